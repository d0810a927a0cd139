"""stemforge: split music into stems (drums, bass, other, vocals) inside audio scripts and DAWs.

>>> import stemforge                                            # doctest: +SKIP
>>> sep = stemforge.StemSeparator(stem="vocals")                # an acapella
>>> acapella = sep(mix, 44100)                                  # same shape, aligned
>>> stems = stemforge.separate(mix, 44100)                      # dict of all stems
>>> report = stemforge.export(["album/"], "stems", recursive=True)  # files to stem files
"""
from .core.chain import Chain
from .core.model import Model, ModelError, ModelInfo, load_model
from .core.processor import StemSeparator, StemSplitter, separate
from .apps.render import render
from .apps.separate import export
from .vst3 import plugin_path

__version__ = "0.1.0"
__all__ = ["Chain", "Model", "ModelError", "ModelInfo", "StemSeparator", "StemSplitter", "export", "load_model",
           "plugin_path", "render", "separate", "__version__"]
