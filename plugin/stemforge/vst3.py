"""Where the stemforge VST3 is: `stemforge.plugin_path()`.

The plugin (plugin/vst3/, GPLv3 because of JUCE) is built by ``python build.py plugin``
into build/vst3/stemforge.vst3 of a source checkout; ``--install`` copies it to ~/.vst3.
"""

from __future__ import annotations

import os
from pathlib import Path


def _candidates() -> list:
    found = []
    if os.environ.get("STEMFORGE_VST3"):
        found.append(Path(os.environ["STEMFORGE_VST3"]).expanduser())
    found.append(Path(__file__).resolve().parents[2] / "build" / "vst3" / "stemforge.vst3")
    found.append(Path.home() / ".vst3" / "stemforge.vst3")
    return found


def plugin_path() -> Path:
    """The built stemforge.vst3 bundle: $STEMFORGE_VST3, else this checkout's
    build/vst3/stemforge.vst3, else ~/.vst3/stemforge.vst3.

    >>> import pedalboard, stemforge                                  # doctest: +SKIP
    >>> plugin = pedalboard.load_plugin(str(stemforge.plugin_path()))  # doctest: +SKIP
    """
    for path in _candidates():
        if (path / "Contents" / "x86_64-linux" / "stemforge.so").is_file():
            return path
    looked = ", ".join(str(p) for p in _candidates())
    raise FileNotFoundError(
        f"the stemforge VST3 is not built (looked in {looked}); build it with "
        "`python build.py plugin` in a source checkout (add --install for ~/.vst3)"
    )
