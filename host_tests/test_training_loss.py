"""The training loss (models/train.py) weighs the vocals stem as documented, without any
training data: an untrained network's errors are fixed, only the weights change."""

from __future__ import annotations

import pytest
import torch

from models.masknet import MaskNet
from models.train import loss_fn


@pytest.fixture(scope="module")
def examples():
    torch.manual_seed(0)
    net = MaskNet(n_fft=256, hop=64, hidden=16, dilations=(1, 2), front="conv")  # untrained
    stems = torch.randn(4, 4, 2, 64 * 40) * torch.tensor([1.0, 0.5, 0.7, 2.5])[None, :, None, None]
    cutoff = torch.tensor([22050.0, 8000.0, 22050.0, 12000.0])
    return net, stems, cutoff


def losses(examples, split_known: bool, weights) -> list:
    net, stems, cutoff = examples
    known = torch.full((stems.shape[0],), split_known)
    if not split_known:  # as the trainer holds them: the accompaniment in the `other` slot
        stems = stems.clone()
        stems[:, :2] = 0
    with torch.no_grad():
        return [loss_fn(net, stems, known, cutoff, vocals_weight=w).item() for w in weights]


def test_the_default_weighs_every_stem_alike(examples):
    net, stems, cutoff = examples
    known = torch.tensor([True, False, True, False])
    with torch.no_grad():
        assert torch.equal(loss_fn(net, stems, known, cutoff), loss_fn(net, stems, known, cutoff, vocals_weight=1.0))


def test_vocals_count_w_times_each_other_stem_where_all_four_are_known(examples):
    """(drums + bass + other + w vocals) / (3 + w): two weights give both terms; a third must fit."""
    one, two, five = losses(examples, True, (1.0, 2.0, 5.0))
    vocals = 5 * two - 4 * one
    rest = 4 * one - vocals
    assert vocals > 0 and rest > 0
    assert one != pytest.approx(two, rel=1e-3), "the weight changes nothing"
    assert five == pytest.approx((rest + 5 * vocals) / 8, rel=1e-5)


def test_other_counts_w_times_drums_and_bass_where_all_four_are_known(examples):
    """(drums + bass + w other + v vocals) / (2 + w + v), beside the vocals' own weight."""
    net, stems, cutoff = examples
    known = torch.full((stems.shape[0],), True)
    with torch.no_grad():
        loss = {
            (wo, wv): loss_fn(net, stems, known, cutoff, vocals_weight=wv, other_weight=wo).item()
            for wo, wv in ((1.0, 1.0), (2.0, 1.0), (1.0, 2.0), (3.0, 2.0))
        }
    # Solve for the three terms from three of the losses; the fourth must fit.
    vocals = 5 * loss[1.0, 2.0] - 4 * loss[1.0, 1.0]
    other = 5 * loss[2.0, 1.0] - 4 * loss[1.0, 1.0]
    drums_bass = 4 * loss[1.0, 1.0] - vocals - other
    assert vocals > 0 and other > 0 and drums_bass > 0
    assert loss[3.0, 2.0] == pytest.approx((drums_bass + 3 * other + 2 * vocals) / 7, rel=1e-5)


def test_where_only_the_accompaniment_is_known_the_weight_cannot_matter(examples):
    """Masks sum to one and stems to the mix, so the accompaniment's error is minus the
    vocals' error: (w vocals + accompaniment) / (1 + w) is the same for every w."""
    one, two, five = losses(examples, False, (1.0, 2.0, 5.0))
    assert one == pytest.approx(two, rel=1e-6) and one == pytest.approx(five, rel=1e-6)


def test_the_record_mix_bus_acts_on_every_stem_alike():
    """The bus EQ and the bus compressor/limiter of train.RecordMix process each stem the
    same linear way, with one gain computed from the mix: the processed stems sum to the
    processed mix, so a record-like training mixture is still the sum of its stems."""
    import random

    import numpy as np

    from models.train import RecordMix

    rng = np.random.default_rng(0)
    stems = (rng.standard_normal((4, 2, 44100)) * np.array([0.3, 0.1, 0.2, 0.4])[:, None, None]).astype(np.float32)
    for seed in range(12):  # every draw of the bus: with and without EQ, compressor or limiter
        alone = RecordMix(random.Random(seed)).bus(stems)
        whole = RecordMix(random.Random(seed)).bus(stems.sum(0)[None])[0]
        assert np.all(np.isfinite(alone))
        # float32 IIR rounding at low shelf frequencies reaches 1e-4; a per-stem (nonlinear) bus is off by 0.1
        np.testing.assert_allclose(alone.sum(0), whole, atol=1e-3)


def test_a_record_mix_keeps_every_stem_finite_and_in_place():
    """Per-stem processing: finite output of the stem's shape at the stem's peak; silence stays silent."""
    import random

    import numpy as np

    from models.train import RecordMix

    rng = np.random.default_rng(1)
    stems = (rng.standard_normal((4, 2, 22050)) * 0.2).astype(np.float32)
    stems[1] = 0
    for seed in range(8):
        out = RecordMix(random.Random(seed))(stems, True)
        assert out.shape == stems.shape and np.all(np.isfinite(out))
        assert not np.any(out[1])


@pytest.mark.parametrize(
    "weights, message",
    [
        ("drums=1", "unknown source"),
        ("fof=x", "expected SOURCE=WEIGHT"),
        ("fof", "expected SOURCE=WEIGHT"),
        ("fof=0", "at least one is above 0"),
        ("fof=1,eif=-1", "weights are >= 0"),
    ],
)
def test_bad_band_weights_are_refused_before_training(weights, message, capsys):
    from models.train import main

    with pytest.raises(SystemExit) as stop:
        main(["--preset", "live", "--band-weights", weights])
    assert stop.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--instrumental", "--real-band", "--record-mix", "--cross-song"])
@pytest.mark.parametrize("share", ["1.5", "-0.1"])
def test_shares_outside_0_to_1_are_refused_before_training(option, share, capsys):
    from models.train import main

    with pytest.raises(SystemExit) as stop:
        main(["--preset", "live", option, share])
    assert stop.value.code == 2 and f"{option} is a share of the examples, from 0 to 1" in capsys.readouterr().err
