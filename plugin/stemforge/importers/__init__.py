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

from ..core.contract import ModelInfo

IMPORTERS = ("demucs", "openunmix")


class ImportRefused(ValueError):
    """An output the importer will not write (not .ts, an existing file, the checkpoint
    itself); nothing was read or written, and the message says what to change."""


def check_output(checkpoint: Path, out: Path, overwrite: bool = False) -> None:
    """Refuse an output that is not a .ts file, exists (unless `overwrite`) or is the
    checkpoint itself, before anything is read."""
    if out.suffix != ".ts":
        raise ImportRefused(f"{out}: model files end in .ts")
    if out.exists() and not overwrite:
        raise ImportRefused(f"{out} exists; --overwrite (overwrite=True) to replace it")
    if out.resolve() == checkpoint.resolve():
        raise ImportRefused(f"{out} is the checkpoint itself; choose another output")


def import_model(
    kind: str, checkpoint: Union[str, os.PathLike], out: Union[str, os.PathLike], *, overwrite: bool = False, **options
) -> ModelInfo:
    """Import a `kind` ("demucs" or "openunmix") checkpoint into the model file `out`
    (ImportRefused for an output `check_output` refuses)."""
    path = Path(checkpoint).expanduser()
    check_output(path, Path(out), overwrite)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if kind == "demucs":
        from .demucs import import_demucs

        return import_demucs(path, Path(out), **options)
    if kind == "openunmix":
        from .openunmix import import_openunmix

        return import_openunmix(path, Path(out), **options)
    raise ValueError(f"unknown importer {kind!r}; choose one of {', '.join(IMPORTERS)}")
