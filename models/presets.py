"""The shipped presets: MaskNet configurations and what their metadata says.

live    n_fft 1024, hop 256, no lookahead frames, a 768-sample synthesis window: the
        model's own latency is synthesis - hop = 512 samples (n_fft - hop = 768 with a
        whole-frame synthesis window), and process_block reports 512 + 255 = 767 samples
        at 44.1 kHz (17.4 ms; 23.2 ms in real time with a hop of headroom, within issue
        22's 25 ms); five dilated blocks see 0.36 s of past.
studio  n_fft 2048, hop 512, 24 lookahead frames: 0.31 s of lookahead per pass and
        1.1 s of past context through ten dilated blocks; 4x the width.
Both take level-invariant features through the frequency-convolution front end
(front="conv"), which won the ablation in models/README.md.

studio runs its MaskNet in two passes (masknet.Cascade): the second separates the voice
from the first pass's other + vocals. It doubles studio's cost and lookahead (0.63 s) and
gains on the real-band validation songs' vocals; live keeps one pass for its latency.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.masknet import Cascade, MaskNet

PRESETS = {
    "live": dict(
        n_fft=1024,
        hop=256,
        hidden=128,
        dilations=(1, 2, 4, 8, 16),
        lookahead_frames=0,
        front="conv",
        synthesis_length=768,
    ),
    "studio": dict(
        n_fft=2048, hop=512, hidden=256, dilations=(1, 2, 4, 8, 16, 1, 2, 4, 8, 16), lookahead_frames=24, front="conv"
    ),
}
DESCRIPTIONS = {
    "live": "stemforge live: low-latency streaming separator (17 ms at 44.1 kHz, 23 ms in real time) for real-time use.",
    "studio": "stemforge studio: the default for file renders; 0.63 s lookahead, best quality.",
}
PASSES = {"live": 1, "studio": 2}


def shipped_network(preset: str, meta: dict, weights: Path) -> "MaskNet | Cascade":
    """The preset's separator as it ships: the run's MaskNet configuration (`meta` is
    weights/<preset>.json) with `weights` loaded and the json's mask exponents, in the
    preset's number of passes. The one place that builds it: build.py, tune and calibrate.
    The json's configuration is the whole network's as it was trained (the trainer writes every
    key), so an older run that predates a key, such as live's synthesis window, builds as it
    was trained, not with the preset's value today."""
    net = MaskNet(**(meta.get("config") or PRESETS[preset]))
    net.load_state_dict(torch.load(weights, weights_only=True))
    net.set_sharpness(meta.get("mask_sharpness", 1.0))
    return (Cascade(net) if PASSES[preset] == 2 else net).eval()
