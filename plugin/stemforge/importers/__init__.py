"""Turn other separators' checkpoints into stemforge model files.

    stemforge import-model demucs CHECKPOINT.th -o models/htdemucs.ts
    stemforge import-model openunmix UMX_FOLDER -o models/umx.ts

The peers' packages are optional: ``pip install demucs`` for Demucs and
``pip install --no-deps openunmix`` for Open-Unmix (its torchaudio
dependency does not load beside torch 2.13 CPU and is not needed). The
files written follow the model contract, so the processor, the CLI and the
DAW hosts run them like any other; the peers' code is only needed here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from ..core.model import ModelInfo

IMPORTERS = ("demucs", "openunmix")


def import_model(kind: str, checkpoint: Union[str, os.PathLike], out: Union[str, os.PathLike],
                 **options) -> ModelInfo:
    """Import a `kind` ("demucs" or "openunmix") checkpoint into the model file `out`."""
    path = Path(checkpoint).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if kind == "demucs":
        from .demucs import import_demucs
        return import_demucs(path, Path(out), **options)
    if kind == "openunmix":
        from .openunmix import import_openunmix
        return import_openunmix(path, Path(out), **options)
    raise ValueError(f"unknown importer {kind!r}; choose one of {', '.join(IMPORTERS)}")
