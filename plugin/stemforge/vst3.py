"""Where the stemforge VST3 is: `stemforge.plugin_path()`.

The plugin (plugin/vst3/, GPLv3 because of JUCE) is built by ``python build.py plugin``
into build/vst3/stemforge.vst3 of a source checkout; ``--install`` copies it to ~/.vst3.
"""

from __future__ import annotations

from pathlib import Path

from .core.native import BINARIES
from .core.native import bundle_candidates as _candidates


def plugin_path() -> Path:
    """The built stemforge.vst3 bundle: $STEMFORGE_VST3, else this checkout's
    build/vst3/stemforge.vst3, else ~/.vst3/stemforge.vst3.

    >>> import pedalboard, stemforge                                  # doctest: +SKIP
    >>> plugin = pedalboard.load_plugin(str(stemforge.plugin_path()))  # doctest: +SKIP
    """
    for path in _candidates():
        if (path / BINARIES / "stemforge.so").is_file():
            return path
    looked = ", ".join(str(p) for p in _candidates())
    raise FileNotFoundError(
        f"the stemforge VST3 is not built (looked in {looked}); build it with "
        "`python build.py plugin` in a source checkout (add --install for ~/.vst3)"
    )
