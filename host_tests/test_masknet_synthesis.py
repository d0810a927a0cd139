"""MaskNet with a shorter synthesis window (models/masknet.py `synthesis_length`, issue 22's
latency): the model's own latency is synthesis_length - hop (plus the lookahead frames), block
by block still equals one call, the stems sum to the input delayed by exactly that, TorchScript
computes the same, and weights trained with the full window start a shorter one without
carrying their windows over. Untrained networks with random weights: only the arithmetic is
under test."""

from __future__ import annotations

import pytest
import torch

from host_tests.helpers import assert_scales_and_scripts, assert_streams_and_sums
from models.masknet import MaskNet
from models.train import load_matching

SMALL = dict(n_fft=256, hop=64, hidden=16, dilations=(1, 2), front="conv")


def randomised(synthesis: int, lookahead: int = 0) -> MaskNet:
    torch.manual_seed(3)
    return MaskNet(lookahead_frames=lookahead, synthesis_length=synthesis, **SMALL).eval()


@pytest.mark.parametrize("synthesis,lookahead", [(128, 0), (192, 0), (128, 2), (0, 0)])
def test_the_stems_sum_to_the_input_delayed_by_the_shorter_latency(synthesis, lookahead):
    net = randomised(synthesis, lookahead)
    assert net.lookahead_samples == (synthesis or 256) - 64 + lookahead * 64
    assert_streams_and_sums(net, torch.randn(2, 2, 64 * 40), (64, 192, 128, 64, 1024))
    delay = net.lookahead_samples
    # An impulse comes out of the stems' sum exactly `delay` samples later, and nowhere else.
    impulse = torch.zeros(1, 2, 64 * 12)
    impulse[..., 64 * 5 + 7] = 1.0
    with torch.no_grad():
        summed = net(impulse, net.initial_state(1))[0].sum(1)[0, 0]
    expected = torch.zeros_like(summed)
    expected[64 * 5 + 7 + delay] = 1.0
    assert torch.allclose(summed, expected, atol=1e-5)


def test_a_shorter_window_keeps_the_analysis_window_whole_and_the_synthesis_window_short():
    net = randomised(128)
    assert net.window.shape == (256,) and net.synthesis_window.shape == (128,)
    assert (net.window[1:] > 0).all()  # the whole frame is heard: the frequency resolution is n_fft's
    full = randomised(0)
    assert torch.allclose(full.window, torch.hann_window(256, periodic=True), atol=1e-7)


def test_the_output_scales_with_the_input_and_torchscript_computes_the_same():
    assert_scales_and_scripts(randomised(128, 1), torch.randn(1, 2, 64 * 24))


@pytest.mark.parametrize("synthesis", [96, 32, 320])
def test_a_synthesis_length_off_the_hop_grid_or_beyond_the_frame_is_refused(synthesis):
    with pytest.raises(ValueError, match="synthesis_length: a multiple of the hop from 128 to n_fft 256"):
        MaskNet(synthesis_length=synthesis, **SMALL)


def test_weights_trained_with_the_full_window_start_a_shorter_one_with_its_own_windows(tmp_path):
    trained = randomised(0)
    path = tmp_path / "full.pt"
    torch.save(trained.state_dict(), path)
    short = MaskNet(synthesis_length=128, **SMALL).eval()
    windows = short.window.clone(), short.synthesis_window.clone()
    assert load_matching(short, path) == []
    assert torch.equal(short.window, windows[0]) and torch.equal(short.synthesis_window, windows[1])
    assert torch.equal(short.encoder.weight, trained.encoder.weight)


def test_a_run_trained_before_the_synthesis_window_builds_as_it_was_trained(tmp_path):
    """shipped_network takes the run's own configuration: a live run whose json predates
    `synthesis_length` keeps the whole-frame window (and its weights file loads), while the
    preset's configuration today has the shorter one."""
    from models.presets import PRESETS, shipped_network

    before = {k: v for k, v in PRESETS["live"].items() if k != "synthesis_length"}
    torch.manual_seed(4)
    path = tmp_path / "live.pt"
    torch.save(MaskNet(**before).state_dict(), path)
    old = shipped_network("live", {"config": before, "mask_sharpness": 0.5}, path)
    assert old.lookahead_samples == 1024 - 256
    assert MaskNet(**PRESETS["live"]).lookahead_samples == 768 - 256 < old.lookahead_samples
