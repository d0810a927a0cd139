"""stemforge: split music into stems (drums, bass, other, vocals) inside audio scripts and DAWs.

>>> import stemforge                                            # doctest: +SKIP
>>> sep = stemforge.StemSeparator(stem="vocals")                # an acapella
>>> acapella = sep(mix, 44100)                                  # same shape, aligned
>>> stems = stemforge.separate(mix, 44100)                      # dict of all stems
>>> report = stemforge.export(["album/"], "stems", recursive=True)  # files to stem files
"""

from typing import TYPE_CHECKING, Any, List

from .version import __version__

__all__ = [
    "Chain",
    "Model",
    "ModelError",
    "ModelInfo",
    "StemSeparator",
    "StemSplitter",
    "export",
    "load_model",
    "plugin_path",
    "render",
    "separate",
    "__version__",
]

if TYPE_CHECKING:
    from .apps.render import render
    from .apps.separate import export
    from .core.chain import Chain
    from .core.contract import ModelError, ModelInfo
    from .core.loading import Model, load_model
    from .core.processor import StemSeparator, StemSplitter, separate
    from .vst3 import plugin_path


def _load() -> None:
    """The public names, imported on first use (PEP 562): they bring torch and pedalboard
    (seconds), which the command line loads inside its Ctrl-C handling instead of before it."""
    from .apps.render import render
    from .apps.separate import export
    from .core.chain import Chain
    from .core.contract import ModelError, ModelInfo
    from .core.loading import Model, load_model
    from .core.processor import StemSeparator, StemSplitter, separate
    from .vst3 import plugin_path

    globals().update(
        Chain=Chain,
        Model=Model,
        ModelError=ModelError,
        ModelInfo=ModelInfo,
        StemSeparator=StemSeparator,
        StemSplitter=StemSplitter,
        export=export,
        load_model=load_model,
        plugin_path=plugin_path,
        render=render,
        separate=separate,
    )


def __getattr__(name: str) -> Any:
    if name.startswith("__"):  # dunder lookups (copy, pickle, doctest) must not load torch
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _load()
    try:
        return globals()[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> List[str]:
    _load()
    return sorted(globals())
