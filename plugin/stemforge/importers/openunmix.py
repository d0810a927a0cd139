"""Open-Unmix checkpoints as window models.

Open-Unmix's bidirectional LSTM sees the whole excerpt it is given, so it
runs as a window model: chunks of `window` seconds cross-faded as Demucs
does, the last chunk ending at the end of the stream (tail "trim": the
scripted Separator takes any length). A stream no longer than one window is
one call, exactly the peer's ``Separator``. ``niter=0``: no Wiener EM, so
no statistics cross a chunk boundary.

The ``openunmix`` package imports torchaudio at module level, which does not
load beside torch 2.13 CPU; its model code never calls it. Install it with
``pip install --no-deps openunmix``: the import below stands a placeholder
in for a missing or broken torchaudio while openunmix's modules load.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch

from ..core.contract import ModelError, ModelInfo
from ..io.model_files import save_model


@contextmanager
def _torchaudio_placeholder() -> Iterator[None]:
    try:
        importlib.import_module("torchaudio")
        yield
        return
    except Exception:  # missing, or installed and broken (libc10_cuda.so)
        for key in [k for k in sys.modules if k == "torchaudio" or k.startswith("torchaudio.")]:
            del sys.modules[key]
    placeholder = types.ModuleType("torchaudio", "stand-in while openunmix imports; never called")
    sys.modules["torchaudio"] = placeholder
    try:
        yield
    finally:
        if sys.modules.get("torchaudio") is placeholder:
            del sys.modules["torchaudio"]


def openunmix_utils():
    """openunmix.utils (its checkpoint loaders), importable without torchaudio."""
    try:
        with _torchaudio_placeholder():
            return importlib.import_module("openunmix.utils")
    except ImportError as e:
        raise ImportError(
            "importing an Open-Unmix checkpoint needs the openunmix package: pip install --no-deps openunmix"
        ) from e


def targets_in(folder: Path) -> list:
    """The targets of an Open-Unmix model folder: <target>.json beside <target>*.pth."""
    return sorted(p.stem for p in folder.glob("*.json") if p.stem != "separator" and any(folder.glob(f"{p.stem}*.pth")))


def import_openunmix(
    folder: Path,
    out: Path,
    *,
    targets: Optional[Sequence[str]] = None,
    name: Optional[str] = None,
    window: float = 10.0,
    overlap: float = 0.25,
    license: Optional[str] = None,
    training_data: Optional[str] = None,
) -> ModelInfo:
    """Script the Open-Unmix Separator of a model folder (separator.json, <target>.json,
    <target>.pth, as Open-Unmix's training writes them) into `out`, with niter=0.

    >>> import_openunmix(Path("umxhq"), Path("models/umxhq.ts"))  # doctest: +SKIP
    """
    if not folder.is_dir() or not (folder / "separator.json").is_file():
        raise ModelError(
            f"{folder}: not an Open-Unmix model folder (needs separator.json and <target>.json/<target>.pth per target)"
        )
    targets = list(targets or targets_in(folder))
    if not targets:
        raise ModelError(f"{folder}: no <target>.json with a <target>.pth beside it")
    if not 0 <= overlap < 1 or window <= 0:
        raise ValueError("window must be positive and overlap in [0, 1)")
    utils = openunmix_utils()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        separator = utils.load_separator(
            str(folder), targets=targets, niter=0, residual=False, device="cpu", pretrained=True
        )
    separator.freeze()
    config = json.loads((folder / "separator.json").read_text())
    rate, channels = int(config["sample_rate"]), int(config["nb_channels"])
    samples = int(window * rate)
    info = ModelInfo(
        name=name or folder.name,
        version="1",
        kind="window",
        sample_rate=rate,
        stems=tuple(targets),
        channels=channels,
        lookahead=samples - 1,
        context=samples - 1,
        hop=int((1 - overlap) * samples),
        window=samples,
        sums_to_mix=False,
        description=(
            f"Open-Unmix imported from {folder.name}: openunmix.model.Separator with niter=0 over {window:g} s windows"
        ),
        training_data=training_data or "as documented for the Open-Unmix checkpoint",
        license=license or "the checkpoint's own licence (umx, umxhq: MIT; umxl: CC BY-NC-SA 4.0)",
        overlap=overlap,
        tail="trim",
    )
    save_model(torch.jit.script(separator), info, out)
    return info
