"""The training loss (models/train.py) weighs the vocals stem as documented, without any
training data: an untrained network's errors are fixed, only the weights change."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from masknet import MaskNet  # noqa: E402
from train import loss_fn  # noqa: E402


@pytest.fixture(scope="module")
def examples():
    torch.manual_seed(0)
    net = MaskNet(n_fft=256, hop=64, hidden=16, dilations=(1, 2), front="conv")  # untrained
    stems = torch.randn(4, 4, 2, 64 * 40) * torch.tensor([1.0, 0.5, 0.7, 0.8])[None, :, None, None]
    cutoff = torch.tensor([22050.0, 8000.0, 22050.0, 12000.0])
    return net, stems, cutoff


def losses(examples, split_known: bool, weights) -> list:
    net, stems, cutoff = examples
    known = torch.full((stems.shape[0],), split_known)
    with torch.no_grad():
        return [loss_fn(net, stems, known, cutoff, vocals_weight=w).item() for w in weights]


def test_the_default_weighs_every_stem_alike(examples):
    net, stems, cutoff = examples
    known = torch.tensor([True, False, True, False])
    with torch.no_grad():
        assert torch.equal(loss_fn(net, stems, known, cutoff), loss_fn(net, stems, known, cutoff, vocals_weight=1.0))


@pytest.mark.parametrize("split_known, others", [(True, 3), (False, 1)])
def test_vocals_count_w_times_another_term(examples, split_known, others):
    """Four stems known: (drums + bass + other + w vocals) / (3 + w); only the accompaniment
    known: (w vocals + accompaniment) / (1 + w). Two weights give both terms; a third must fit."""
    one, two, five = losses(examples, split_known, (1.0, 2.0, 5.0))
    vocals = (others + 2) * two - (others + 1) * one
    rest = (others + 1) * one - vocals
    assert vocals > 0 and rest > 0
    assert one != pytest.approx(two, rel=1e-3), "the weight changes nothing"
    assert five == pytest.approx((rest + 5 * vocals) / (others + 5), rel=1e-5)
