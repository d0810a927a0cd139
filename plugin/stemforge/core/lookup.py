"""Where models are found: a bare name ("studio") is looked up in the model folders (the
environment's, a source checkout's, a wheel's, the pulled models' cache), anything else is a
path. The VST3 plugin's menu searches the same folders (plugin/vst3/Source/PluginProcessor.cpp).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Union

from .contract import ModelError

DEFAULT_MODEL = "studio"
PRESETS = ("live", "studio")  # the trained models that ship, loaded by name only


def stemforge_home() -> Path:
    """The user's stemforge folder: $STEMFORGE_HOME, else the platform's cache folder
    (~/.cache/stemforge, or $XDG_CACHE_HOME/stemforge; ~/Library/Caches/stemforge on macOS;
    %LOCALAPPDATA%\\stemforge on Windows). Pulled models are in its models/ folder."""
    if os.environ.get("STEMFORGE_HOME"):
        return Path(os.environ["STEMFORGE_HOME"]).expanduser()
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "stemforge"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "stemforge"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "stemforge"


def pulled_models_dir() -> Path:
    """Where `stemforge models pull` puts the models it imports (every face finds them by name)."""
    return stemforge_home() / "models"


def model_dirs() -> List[Path]:
    """Where model names are looked up, first match wins."""
    dirs = [Path(p) for p in os.environ.get("STEMFORGE_MODELS", "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parent
    dirs.append(here.parents[2] / "models")  # a source checkout (editable install)
    dirs.append(Path(sys.prefix) / "share" / "stemforge" / "models")  # a wheel install
    dirs.append(pulled_models_dir())  # `stemforge models pull`
    return dirs


def resolve(name_or_path: Union[str, os.PathLike, None]) -> Path:
    """A bare name ("studio") is looked up among the model folders first, so that a file or
    folder of that name in the current folder (an earlier ``-o studio``) does not shadow a
    preset; a name with a suffix or a folder in it is a path."""
    name = DEFAULT_MODEL if name_or_path is None else os.fspath(name_or_path)
    path = Path(name).expanduser()
    is_path = bool(path.suffix) or os.sep in name or "/" in name
    if not is_path:
        for d in model_dirs():
            candidate = d / f"{name}.ts"
            if candidate.is_file():
                return candidate
    if is_path or path.is_file():
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        return path
    searched = ", ".join(str(d) for d in model_dirs())
    hint = ""
    if name_or_path is None:
        hint = (
            f" No trained default model found: stemforge ships {DEFAULT_MODEL}.ts (in a checkout, "
            "`python build.py` builds it); reinstall stemforge, or name a model or a .ts file, e.g. "
            "fixture-stream (an UNTRAINED test fixture built by build.py, not a separator)."
        )
    if not hint:
        hint = " `stemforge models list` shows the models there are and those you can pull."
    raise ModelError(f"model {name!r} not found (looked for {name}.ts in {searched}).{hint}")
