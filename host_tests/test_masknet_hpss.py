"""MaskNet's HPSS inputs and skip (models/masknet.py, issue 19) keep the streaming contract:
block by block equals one call, the output scales with the input, TorchScript computes the
same, the training path (masks()) sees what the streaming path sees, and a network widened
from trained weights starts out computing exactly what they did. Untrained networks with
random weights: only the arithmetic is under test."""

from __future__ import annotations

import pytest
import torch

from host_tests.helpers import assert_scales_and_scripts, assert_streams_and_sums
from models.masknet import MaskNet, _ninther
from models.train import load_matching

SMALL = dict(n_fft=256, hop=64, hidden=16, dilations=(1, 2))
# (lookahead frames, front end, hpss): centred, partly centred and causal time medians.
CASES = [(3, "conv", (3, 9)), (1, "conv", (27, 3)), (0, "linear", (9, 9))]


def randomised(lookahead: int, front: str, hpss) -> MaskNet:
    torch.manual_seed(1)
    net = MaskNet(lookahead_frames=lookahead, front=front, hpss=hpss, **SMALL).eval()
    with torch.no_grad():  # the skip starts at zero; give it weight so that it is exercised
        net.hpss_skip.normal_(0, 2)
    return net


@pytest.mark.parametrize("lookahead,front,hpss", CASES)
def test_block_by_block_equals_one_call_and_stems_sum_to_the_input(lookahead, front, hpss):
    net = randomised(lookahead, front, hpss)
    assert_streams_and_sums(net, torch.randn(2, 2, 64 * 48))


@pytest.mark.parametrize("lookahead,front,hpss", CASES)
def test_the_output_scales_with_the_input_and_torchscript_computes_the_same(lookahead, front, hpss):
    net = randomised(lookahead, front, hpss)
    x = torch.randn(1, 2, 64 * 32)
    assert_scales_and_scripts(net, x)


@pytest.mark.parametrize("lookahead,front,hpss", CASES)
def test_training_masks_are_the_streaming_masks(lookahead, front, hpss, monkeypatch):
    """masks() (the loss's path, the whole sequence at once) and forward() hop by hop give
    the same masks for the same frames."""
    net = randomised(lookahead, front, hpss)
    x = torch.randn(1, 2, 64 * 30)
    seen = []
    skip = net.skip
    monkeypatch.setattr(net, "skip", lambda logits, hpss: seen.append(skip(logits, hpss)) or seen[-1])
    with torch.no_grad():
        state = net.initial_state(1)
        for start in range(0, x.shape[-1], 64):
            _, state = net(x[..., start : start + 64], state)
        streamed = torch.softmax(torch.cat(seen, dim=1), dim=2).permute(0, 2, 3, 1, 4)
        trained = net.masks(net.spectra(x))
    assert torch.allclose(trained, streamed, atol=1e-5)


def test_a_widened_network_starts_as_the_trained_one(tmp_path):
    torch.manual_seed(2)
    plain = MaskNet(lookahead_frames=2, front="conv", **SMALL).eval()
    path = tmp_path / "plain.pt"
    torch.save(plain.state_dict(), path)
    widened = MaskNet(lookahead_frames=2, front="conv", hpss=(9, 9), **SMALL).eval()
    assert load_matching(widened, path) == []
    x = torch.randn(1, 2, 64 * 30)
    with torch.no_grad():
        a, _ = plain(x, plain.initial_state(1))
        b, _ = widened(x, widened.initial_state(1))
    assert torch.equal(a, b)
    assert widened.front_conv.conv1.weight[:, 2:].abs().max() == 0  # the HPSS inputs start unheard


def test_the_recursive_median_removes_a_click_and_keeps_a_step():
    x = torch.zeros(1, 40)
    x[0, 20:] = 1.0  # a held note starting: a step
    x[0, 7] = 50.0  # a click
    y = _ninther(x, 1, 9)  # y[i] ~ median of x[i : i + 9]
    assert y.shape == (1, 32)
    assert y[0, :8].max() == 0  # the click is gone
    assert torch.equal(y[0, 16:], torch.ones(16))  # windows mostly on the step keep it
    exact = torch.randn(6, 3)
    assert torch.equal(_ninther(exact, 1, 3)[:, 0], exact.median(dim=1).values)


@pytest.mark.parametrize("hpss", [(4, 9), (9, 0), (5, 5)])
def test_median_lengths_that_are_not_powers_of_3_are_refused(hpss):
    with pytest.raises(ValueError, match="powers of 3"):
        MaskNet(hpss=hpss, **SMALL)


def test_per_stem_sharpness_keeps_the_sum_and_changes_only_the_split():
    """models/calibrate.py gives each stem its own mask exponent: the masks still sum to one
    over the stems, so the stems still add up to the input, and a per-stem list equal to one
    value is that value."""
    torch.manual_seed(3)
    net = MaskNet(lookahead_frames=1, front="conv", **SMALL).eval()
    x = torch.randn(1, 2, 64 * 30)
    with torch.no_grad():
        net.set_sharpness(0.5)
        one, _ = net(x, net.initial_state(1))
        net.set_sharpness([0.5] * 4)
        same, _ = net(x, net.initial_state(1))
        net.set_sharpness([0.2, 0.2, 0.2, 1.5])
        split, _ = net(x, net.initial_state(1))
        scripted = torch.jit.script(net)
        scripted_split, _ = scripted(x, scripted.initial_state(1))
    assert torch.equal(one, same)
    assert not torch.allclose(split, one, atol=1e-3)
    assert torch.allclose(split.sum(1), one.sum(1), atol=1e-5)
    assert torch.allclose(scripted_split, split, atol=1e-6)
    with pytest.raises(ValueError, match="one positive value or 4"):
        net.set_sharpness([1.0, 2.0])
