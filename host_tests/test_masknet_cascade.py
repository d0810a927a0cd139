"""MaskNet in two passes (models/masknet.py Cascade, studio's shape; issue 19) keeps the
streaming contract: block by block equals one call, the stems sum to the input delayed by the
reported lookahead, TorchScript computes the same, the output scales with the input, and the
stems are what the two passes say: drums and bass from the first, vocals from the second pass
over the first's other + vocals. Untrained networks with random weights: only the arithmetic
is under test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from host_tests.helpers import assert_scales_and_scripts, assert_streams_and_sums
from models.masknet import Cascade, MaskNet
from models.presets import PASSES, PRESETS, shipped_network

SMALL = dict(n_fft=256, hop=64, hidden=16, dilations=(1, 2), front="conv")
WEIGHTS = Path(__file__).resolve().parents[1] / "models" / "weights"


def randomised(lookahead: int) -> Cascade:
    torch.manual_seed(2)
    net = MaskNet(lookahead_frames=lookahead, **SMALL)
    net.set_sharpness([0.5, 0.5, 0.5, 1.5])
    return Cascade(net).eval()


@pytest.mark.parametrize("lookahead", [0, 3])
def test_block_by_block_equals_one_call_and_stems_sum_to_the_delayed_input(lookahead):
    cascade = randomised(lookahead)
    assert cascade.lookahead_samples == 2 * cascade.net.lookahead_samples
    assert_streams_and_sums(cascade, torch.randn(2, 2, 64 * 40), (64, 192, 128, 64, 1024))


def test_the_stems_are_the_two_passes():
    cascade = randomised(2)
    net, delay = cascade.net, cascade.net.lookahead_samples
    x = torch.randn(1, 2, 64 * 30)
    with torch.no_grad():
        y, _ = cascade(x, cascade.initial_state(1))
        first, _ = net(x, net.initial_state(1))
        remainder = first[:, 2] + first[:, 3]
        second, _ = net(remainder, net.initial_state(1))
    n = x.shape[-1] - delay
    assert torch.allclose(y[:, :2, :, delay:], first[:, :2, :, :n], atol=1e-6)  # drums, bass: the first pass
    assert torch.allclose(y[:, 3], second[:, 3], atol=1e-6)  # vocals: the second pass
    assert torch.allclose(y[:, 2, :, delay:], remainder[..., :n] - second[:, 3, :, delay:], atol=1e-5)
    assert not torch.allclose(y[:, 3, :, delay:], first[:, 3, :, :n], atol=1e-3)  # a second pass changes them


def test_the_output_scales_with_the_input_and_torchscript_computes_the_same():
    cascade = randomised(1)
    x = torch.randn(1, 2, 64 * 24)
    assert_scales_and_scripts(cascade, x)


def test_a_cascade_needs_four_stems():
    with pytest.raises(ValueError, match="four stems"):
        Cascade(MaskNet(stems=2, **SMALL))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_the_shipped_network_runs_the_presets_passes(preset):
    meta = json.loads((WEIGHTS / f"{preset}.json").read_text())
    net = shipped_network(preset, meta, WEIGHTS / f"{preset}.pt")
    assert isinstance(net, Cascade) == (PASSES[preset] == 2)
    single = net.net if isinstance(net, Cascade) else net
    assert single.mask_sharpness.tolist() == pytest.approx(
        [meta["mask_sharpness"]] * 4 if isinstance(meta["mask_sharpness"], (int, float)) else meta["mask_sharpness"]
    )
    assert not net.training
