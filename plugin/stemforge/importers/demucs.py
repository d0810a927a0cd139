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

A bag of models (HTDemucs fine-tuned: four members, one per stem, given by
per-source weights) becomes one file: every member runs on the same chunk and
each stem is the weighted mean of the members' (`WeightedBag`), which is what
``apply_model`` computes on the bag, since the cross-fade is linear.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch

from ..core.contract import ModelError, ModelInfo
from ..io.model_files import save_model


def _demucs():
    try:
        from demucs.apply import BagOfModels
        from demucs.htdemucs import HTDemucs
        from demucs.states import load_model
    except ImportError as e:
        raise ImportError("importing a Demucs checkpoint needs the demucs package: pip install demucs") from e
    return BagOfModels, HTDemucs, load_model


def import_demucs(
    checkpoint: Path,
    out: Path,
    *,
    name: Optional[str] = None,
    overlap: float = 0.25,
    segment: Optional[float] = None,
    license: Optional[str] = None,
    training_data: Optional[str] = None,
) -> ModelInfo:
    """Trace the Demucs model in `checkpoint` into `out`: a .th file as Demucs saves them, or
    a bag of models as Demucs describes one (a .yaml with ``models``, optional ``weights``
    and ``segment``, the members' ``<signature>-<checksum>.th`` files beside it).

    >>> import_demucs(Path("955717e8-8726e21a.th"), Path("models/htdemucs.ts"))  # doctest: +SKIP
    >>> import_demucs(Path("htdemucs_ft/htdemucs_ft.yaml"), Path("htdemucs_ft.ts"))  # doctest: +SKIP
    """
    bag = checkpoint.suffix in (".yaml", ".yml")
    members, weights, bag_segment = _read_bag(checkpoint) if bag else ([checkpoint], None, None)
    models = [_load_htdemucs(path) for path in members]
    first = models[0]
    if segment is None and bag_segment is not None and bag_segment <= float(first.segment):
        segment = bag_segment  # as BagOfModels(segment=...) sets it on HTDemucs members
    for path, other in zip(members[1:], models[1:]):
        if (list(other.sources), other.samplerate, other.audio_channels, float(other.segment)) != (
            list(first.sources),
            first.samplerate,
            first.audio_channels,
            float(first.segment),
        ):
            raise ModelError(
                f"{path}: its sources, rate, channels or segment differ from "
                f"{members[0].name}'s; a bag runs every member on the same windows"
            )
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    segment = float(first.segment) if segment is None else float(segment)
    window = int(first.samplerate * segment)
    if segment > float(first.segment):
        raise ValueError(f"segment {segment} s is longer than the model's training segment {float(first.segment)} s")
    hop = int((1 - overlap) * window)
    module = WeightedBag(models, weights, checkpoint) if bag else first
    example = torch.randn(1, first.audio_channels, window, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, example, check_trace=False)
    what = (
        f"HTDemucs imported from {checkpoint.name}"
        if not bag
        else f"a bag of {len(models)} HTDemucs ({', '.join(p.name for p in members)}) imported from "
        f"{checkpoint.name}, each stem taken from the members its weights name"
    )
    info = ModelInfo(
        name=name or checkpoint.stem,
        version="1",
        kind="window",
        sample_rate=int(first.samplerate),
        stems=tuple(first.sources),
        channels=int(first.audio_channels),
        lookahead=window - 1,
        context=window - 1,
        hop=hop,
        window=window,
        sums_to_mix=False,
        description=(
            f"{what}: traced at its {segment:g} s segment, run as demucs.apply.apply_model(shifts=0, overlap={overlap})"
        ),
        training_data=training_data
        or "as documented for the Demucs checkpoint (MUSDB18-HQ and extra data for the released models)",
        license=license or "the checkpoint's own licence (Demucs's released weights: MIT)",
        overlap=overlap,
        tail="center",
        padded_window=window,
        input_normalization="track",
    )
    save_model(traced, info, out)
    return info


def _load_htdemucs(checkpoint: Path):
    BagOfModels, HTDemucs, load_model = _demucs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Demucs's own "dropping parameter" notes
        try:
            model = load_model(str(checkpoint))
        except Exception as e:
            raise ModelError(
                f"{checkpoint}: not a Demucs checkpoint that demucs.states.load_model reads ({type(e).__name__}: {e})"
            ) from e
    if isinstance(model, BagOfModels):
        raise ModelError(f"{checkpoint}: a bag of models; import its .yaml (the members' .th files beside it)")
    if not isinstance(model, HTDemucs):
        raise ModelError(
            f"{checkpoint}: a {type(model).__name__}; stemforge imports HTDemucs "
            "checkpoints (a trace at one length must see every chunk at that length)"
        )
    return model.eval()


def _read_bag(path: Path) -> Tuple[List[Path], Optional[List[List[float]]], Optional[float]]:
    """The members, weights and segment of a Demucs bag file (demucs/remote/*.yaml); each
    member is the .th beside it whose name is its signature, as Demucs's LocalRepo finds them."""
    try:
        import yaml
    except ImportError as e:
        raise ImportError("reading a Demucs bag needs PyYAML, which demucs installs: pip install demucs") from e
    try:
        bag = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ModelError(f"{path}: not a YAML bag of models ({e})") from None
    signatures = bag.get("models") if isinstance(bag, dict) else None
    if not signatures or not all(isinstance(s, str) for s in signatures):
        raise ModelError(f"{path}: a bag of models needs 'models', a list of signatures")
    members = []
    for sig in signatures:
        found = sorted(p for p in path.parent.glob(f"{sig}*.th") if p.stem == sig or p.stem.rsplit("-", 1)[0] == sig)
        if len(found) != 1:
            raise ModelError(
                f"{path}: member {sig} needs one {sig}-<checksum>.th beside it, found {len(found)} in {path.parent}"
            )
        members.append(found[0])
    segment = bag.get("segment")
    return members, bag.get("weights"), None if segment is None else float(segment)


class WeightedBag(torch.nn.Module):
    """Demucs's BagOfModels as apply_model runs it on one chunk: every member on the same
    input, stem k the weighted mean of the members' stem k (weights[member][k])."""

    def __init__(self, models: Sequence[torch.nn.Module], weights: Optional[Sequence[Sequence[float]]], where: Path):
        super().__init__()
        stems = len(models[0].sources)
        if weights is None:  # Demucs's default: every member, every stem
            weights = [[1.0] * stems for _ in models]
        w = torch.tensor(weights, dtype=torch.float64)
        if tuple(w.shape) != (len(models), stems) or bool((w < 0).any()):
            raise ModelError(
                f"{where}: weights must be {len(models)} lists of {stems} "
                "non-negative numbers (one per member, one per stem)"
            )
        totals = w.sum(0)
        if bool((totals == 0).any()):
            raise ModelError(
                f"{where}: no member has weight for stem(s) "
                f"{[models[0].sources[k] for k in range(stems) if totals[k] == 0]}"
            )
        used = [i for i in range(len(models)) if bool(w[i].any())]  # all-zero members never run
        self.members = torch.nn.ModuleList([models[i] for i in used])
        self.register_buffer("weights", (w[used] / totals).float()[:, None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.members[0](x) * self.weights[0]
        for i in range(1, len(self.members)):
            out = out + self.members[i](x) * self.weights[i]
        return out
