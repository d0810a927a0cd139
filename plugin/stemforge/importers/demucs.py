"""Demucs checkpoints (HTDemucs, as released and fine-tuned) as window models.

HTDemucs does not script (``if self.dconv:``, ``Fraction``, ``random``), but a
trace at one fixed length matches eager mode exactly, and a trace accepts
only that length. So the model is traced at its training segment (7.8 s for
the released HTDemucs) and runs as a window model: the engine reproduces
``demucs.apply.apply_model(model, mix, shifts=0, split=True, overlap=0.25)``
chunk for chunk (triangle weights, chunks centred in a full segment at the
end, Demucs's ``TensorChunk.padded``) and the whole-track normalisation of
``demucs.api``/``demucs.separate``. ``shifts=0``: Demucs's default random
shift makes its own output irreproducible.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import torch

from ..core.model import ModelError, ModelInfo, save_model


def _demucs():
    try:
        from demucs.apply import BagOfModels
        from demucs.htdemucs import HTDemucs
        from demucs.states import load_model
    except ImportError as e:
        raise ImportError("importing a Demucs checkpoint needs the demucs package: "
                          "pip install demucs") from e
    return BagOfModels, HTDemucs, load_model


def import_demucs(checkpoint: Path, out: Path, *, name: Optional[str] = None,
                  overlap: float = 0.25, segment: Optional[float] = None) -> ModelInfo:
    """Trace the Demucs model in `checkpoint` (a .th file as Demucs saves them) into `out`.

    >>> import_demucs(Path("955717e8-8726e21a.th"), Path("models/htdemucs.ts"))  # doctest: +SKIP
    """
    BagOfModels, HTDemucs, load_model = _demucs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Demucs's own "dropping parameter" notes
        try:
            model = load_model(str(checkpoint))
        except Exception as e:
            raise ModelError(f"{checkpoint}: not a Demucs checkpoint that demucs.states.load_model "
                             f"reads ({type(e).__name__}: {e})") from e
    if isinstance(model, BagOfModels):
        raise ModelError(f"{checkpoint}: a bag of models; import each of its .th files")
    if not isinstance(model, HTDemucs):
        raise ModelError(f"{checkpoint}: a {type(model).__name__}; stemforge imports HTDemucs "
                         "checkpoints (a trace at one length must see every chunk at that length)")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    model.eval()
    segment = float(model.segment) if segment is None else segment
    window = int(model.samplerate * segment)
    if segment > float(model.segment):
        raise ValueError(f"segment {segment} s is longer than the model's training segment "
                         f"{float(model.segment)} s")
    hop = int((1 - overlap) * window)
    example = torch.randn(1, model.audio_channels, window, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example, check_trace=False)
    info = ModelInfo(
        name=name or checkpoint.stem, version="1", kind="window", sample_rate=int(model.samplerate),
        stems=tuple(model.sources), channels=int(model.audio_channels),
        lookahead=window - 1, context=window - 1, hop=hop, window=window, sums_to_mix=False,
        description=(f"HTDemucs imported from {checkpoint.name}: traced at its {segment:g} s segment, "
                     f"run as demucs.apply.apply_model(shifts=0, overlap={overlap})"),
        training_data="as documented for the Demucs checkpoint (MUSDB18-HQ and extra data for "
                      "the released models)",
        license="the checkpoint's own licence (Demucs's released weights: MIT)",
        overlap=overlap, tail="center", padded_window=window, input_normalization="track")
    save_model(traced, info, out)
    return info
