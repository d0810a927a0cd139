"""The shipped presets: they load, follow the contract, stream block-invariantly, and
separate the bundled held-out demo song better than doing nothing (a functional check;
bench/quality.py measures quality)."""
from __future__ import annotations

import numpy as np
import pytest
from pedalboard.io import AudioFile

import stemforge
from conftest import MODELS, blocks

STEMS = ("drums", "bass", "other", "vocals")


@pytest.fixture(scope="module")
def demo():
    """The demo song's true stems, (4, 2, n); its mix is their exact sum."""
    stems = []
    for s in STEMS:
        with AudioFile(str(MODELS / "demo" / "stems" / f"{s}.flac")) as f:
            assert f.samplerate == 44100
            stems.append(f.read(f.frames))
    return np.stack(stems)


def sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    return 10 * np.log10(np.sum(reference ** 2) / np.sum((reference - estimate) ** 2))


@pytest.mark.parametrize("name", ["studio", "live"])
def test_presets_load_as_trained_models(name):
    model = stemforge.load_model(name)
    assert model.stems == STEMS and model.sample_rate == 44100 and model.channels == 2
    assert not model.info.untrained and model.info.sums_to_mix
    assert "corpus" in model.info.training_data and model.info.license
    assert (MODELS / f"{name}.ts").stat().st_size <= 50 * 2 ** 20


def test_studio_is_the_default_and_live_meets_its_latency():
    assert stemforge.load_model().name == "studio"
    live = stemforge.StemSeparator("live")
    live.prepare(44100, 2)
    assert live.latency_samples <= 1024  # 23 ms at 44.1 kHz, what a DAW reports
    studio = stemforge.StemSeparator("studio")
    studio.prepare(44100, 2)
    assert studio.latency_samples <= 44100  # at most about a second of lookahead


@pytest.mark.parametrize("name", ["studio", "live"])
def test_presets_stream_block_invariantly(demo, name):
    mix = demo.sum(0)[:, :3 * 44100]
    sep = stemforge.StemSeparator(name, stem="vocals")
    offline = sep(mix, 44100)
    for block in (128, 4096):
        np.testing.assert_allclose(blocks(sep, mix, 44100, block), offline, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["studio", "live"])
def test_presets_separate_the_held_out_demo_better_than_the_mix(demo, name):
    mix = demo.sum(0)
    estimates = stemforge.separate(mix, 44100, name)
    for i, stem in enumerate(STEMS):
        gain = sdr(estimates[stem], demo[i]) - sdr(mix, demo[i])
        assert gain >= 3.0, f"{name} {stem}: only {gain:.1f} dB better than the mix"
    residual = sum(estimates.values()) - mix
    assert 10 * np.log10(np.sum(residual ** 2) / np.sum(mix ** 2)) < -80
