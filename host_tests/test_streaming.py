"""Streaming equals offline for any chunking; process_block is offline delayed by latency_samples."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_tests.helpers import FIXTURES, blocks, music, stream
from stemforge import StemSeparator

RATES = [8000, 22050, 44100, 48000, 96000, 192000]
TOLERANCE = 1e-6  # float summation order differs when the model runs more hops per call


@pytest.fixture(scope="module")
def offline_cache(models):
    cache = {}

    def offline(name, rate, channels=2, seconds=0.6, **options):
        key = (name, rate, channels, seconds, tuple(sorted(options.items())))
        if key not in cache:
            x = music(seconds, rate, channels)
            sep = StemSeparator(models[name], **(options or {"stem": "vocals"}))
            cache[key] = (x, sep(x, rate))
        return cache[key]

    return offline


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(FIXTURES),
    rate=st.sampled_from(RATES),
    sizes=st.lists(st.integers(1, 9000), min_size=1, max_size=12),
)
def test_any_chunking_streams_to_the_offline_output(models, offline_cache, name, rate, sizes):
    x, expected = offline_cache(name, rate)
    got = stream(StemSeparator(models[name], stem="vocals"), x, rate, sizes)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("sizes", [[1], [7, 13, 31], [8192], [4096, 1]])
def test_named_chunkings_including_single_samples(models, offline_cache, sizes):
    x, expected = offline_cache("fixture-stream", 48000, seconds=0.25)
    got = stream(StemSeparator(models["fixture-stream"], stem="vocals"), x, 48000, sizes)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)


def test_streaming_returns_audio_as_it_becomes_available(stream_model):
    from stemforge.core.engine import THROUGHPUT_STEP_SAMPLES

    sep = StemSeparator(stream_model, stem="vocals")
    x = music(3.0)
    sep.prepare(44100, 2)
    assert sep.process(x[:, :512], 44100, reset=False).shape[1] < 512  # lookahead holds it back
    returned, received = 0, 512
    bound = THROUGHPUT_STEP_SAMPLES + stream_model.info.lookahead + stream_model.info.hop
    for i in range(512, x.shape[1], 4096):
        returned += sep.process(x[:, i : i + 4096], 44100, reset=False).shape[1]
        received = min(i + 4096, x.shape[1])
        assert received - returned <= bound  # batched for throughput, but bounded
    assert returned > 0
    assert returned + sep.flush().shape[1] == x.shape[1]


def test_buffer_size_never_changes_the_result(stream_model):
    x = music(0.5, 48000)
    sep = StemSeparator(stream_model, gains={"vocals": 0.0})
    reference = sep(x, 48000)
    for buffer_size in (1, 100, 8192, 1 << 20):
        np.testing.assert_array_equal(sep.process(x, 48000, buffer_size=buffer_size), reference)


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("rate", [44100, 48000, 22050])
@pytest.mark.parametrize("block", [64, 128, 512, 4096])
def test_process_block_is_the_offline_output_delayed_by_latency(models, offline_cache, name, rate, block):
    x, expected = offline_cache(name, rate, seconds=0.3, gains=(("vocals", 0.25),))
    sep = StemSeparator(models[name], gains={"vocals": 0.25})
    got = blocks(sep, x, rate, block)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("block", [1, 37, 1000])
def test_process_block_accepts_any_block_length(stream_model, block):
    x = music(0.1, 48000)
    expected = StemSeparator(stream_model, stem="bass")(x, 48000)
    got = blocks(StemSeparator(stream_model, stem="bass"), x, 48000, block)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)


def test_latency_is_known_after_prepare_and_does_not_depend_on_block_size(models):
    stream_model, window_model = models["fixture-stream"], models["fixture-window"]
    sep = StemSeparator(stream_model)
    sep.prepare(44100, 2)
    # at the model's own rate: the model's lookahead plus one hop of buffering, to the sample
    assert sep.latency_samples == stream_model.info.lookahead + stream_model.info.hop - 1
    sep.prepare(48000, 2)
    at_48k = sep.latency_samples
    assert at_48k > (stream_model.info.lookahead + stream_model.info.hop) * 48000 / 44100
    window = StemSeparator(window_model)
    window.prepare(44100, 1)
    assert window.latency_samples == window_model.info.window - 1
    for block in (64, 4096):
        sep.prepare(48000, 2)
        sep.process_block(np.zeros((2, block), np.float32), 48000)
        assert sep.latency_samples == at_48k


def test_an_impulse_comes_out_exactly_latency_samples_later(stream_model):
    sep = StemSeparator(stream_model, gains={})  # all stems at unity: the input itself
    sep.prepare(44100, 2)
    latency = sep.latency_samples
    x = np.zeros((2, 6000), np.float32)
    x[:, 1000] = 1.0
    out = np.concatenate([sep.process_block(x[:, i : i + 128], 44100) for i in range(0, 6000, 128)], 1)
    assert np.argmax(np.abs(out[0])) == 1000 + latency
    np.testing.assert_allclose(out[:, 1000 + latency], 1.0, atol=1e-5)


def test_mixing_stream_and_block_calls_needs_a_reset(stream_model):
    sep = StemSeparator(stream_model)
    sep.process(music(0.1), 44100, reset=False)
    with pytest.raises(RuntimeError, match="reset"):
        sep.process_block(np.zeros((2, 128), np.float32), 44100)
    sep.reset()
    assert sep.process_block(np.zeros((2, 128), np.float32), 44100).shape == (2, 128)
    with pytest.raises(ValueError, match="call reset"):
        sep.process_block(np.zeros((2, 128), np.float32), 48000)


@pytest.mark.parametrize("name", ["fixture-stream", "fixture-window"])
def test_block_processing_memory_stays_flat(models, name):
    sep = StemSeparator(models[name], stem="vocals")
    sep.prepare(48000, 2)
    block = np.random.default_rng(0).standard_normal((2, 512)).astype(np.float32) * 0.1
    for _ in range(200):  # warm up every buffer
        sep.process_block(block, 48000)
    tracemalloc.start()
    for _ in range(200):
        sep.process_block(block, 48000)
    early, _ = tracemalloc.get_traced_memory()
    for _ in range(1500):  # 16 s more of audio
        sep.process_block(block, 48000)
    late, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert late - early < 256 * 1024, f"memory grew by {late - early} bytes"
