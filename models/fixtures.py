"""The UNTRAINED test fixtures: MaskNet models with fixed random weights that exercise the
model contract, the engine and the hosts (not separators; never loaded by default).
build.py writes them to models/fixture-*.ts; bench/stream_vs_offline.py builds a larger one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

import torch

from models.masknet import MaskNet, WindowMaskNet
from stemforge.core.contract import ModelInfo

STEMS = ("drums", "bass", "other", "vocals")
FIXTURE_NOTE = (
    "UNTRAINED test fixture: fixed random weights (seed {seed}), not a separator. "
    "It exercises the model contract, the engine and the hosts."
)


@dataclass
class Fixture:
    name: str
    kind: str
    sample_rate: int
    channels: int
    net: Dict = field(default_factory=dict)
    window: int = 0
    overlap: float = 0.0
    seed: int = 0


FIXTURES = [
    Fixture(
        "fixture-stream",
        "streaming",
        44100,
        2,
        dict(n_fft=1024, hop=256, hidden=32, dilations=(1, 2, 4), lookahead_frames=2),
    ),
    Fixture(
        "fixture-window",
        "window",
        44100,
        2,
        dict(n_fft=512, hop=128, hidden=16, dilations=(1, 2), lookahead_frames=1),
        window=8192,
        overlap=0.25,
        seed=1,
    ),
    Fixture(
        "fixture-mono-22k",
        "streaming",
        22050,
        1,
        dict(n_fft=512, hop=128, hidden=16, dilations=(1, 2), lookahead_frames=1),
        seed=2,
    ),
]


def build_fixture(f: Fixture) -> tuple:
    torch.manual_seed(f.seed)
    net = MaskNet(stems=len(STEMS), channels=f.channels, **f.net).eval()
    common = dict(
        name=f.name,
        version="0",
        sample_rate=f.sample_rate,
        stems=STEMS,
        channels=f.channels,
        sums_to_mix=True,
        untrained=True,
        description=FIXTURE_NOTE.format(seed=f.seed),
        training_data="none (random weights)",
        license="MIT",
    )
    if f.kind == "streaming":
        info = ModelInfo(
            kind="streaming",
            lookahead=net.lookahead_samples,
            context=net.context_samples,
            hop=net.hop,
            window=net.hop,
            **common,
        )
        return net, info
    stride = int((1 - f.overlap) * f.window)
    info = ModelInfo(kind="window", lookahead=0, context=0, hop=stride, window=f.window, overlap=f.overlap, **common)
    return WindowMaskNet(net, f.window).eval(), info
