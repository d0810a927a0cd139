"""Issue 22: StemSeparator(realtime=True, engine="python").process_block never runs the model itself.

The model runs in a worker thread; a hop's stems are due a headroom after the hop is
complete. None of these tests depends on the machine's speed: "the worker keeps up" is
made true by waiting for it between blocks (`wait_idle`), and "the worker is late" by a
model that blocks until the test lets it go.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

import stemforge
from host_tests.helpers import music, run_realtime
from stemforge.core.pipeline import latency_of, realtime_headroom

STEMS = ("drums", "bass", "other", "vocals")


@pytest.fixture(scope="module")
def live():
    return stemforge.load_model("live")


class Gate:
    """Wraps a model's step: every call from a worker waits until the gate is open, and the
    threads that called it are recorded."""

    def __init__(self, model):
        self.model, self.step = model, model.step
        self.open = threading.Event()
        self.open.set()
        self.threads = set()
        model.step = self

    def __call__(self, chunk, state):
        self.threads.add(threading.current_thread().name)
        assert self.open.wait(timeout=60)
        return self.step(chunk, state)

    def remove(self):
        del self.model.step  # the instance attribute goes; the class's method is back


@pytest.fixture
def gated(models):
    model = stemforge.load_model(models["fixture-stream"].path)  # a model of its own to patch
    gate = Gate(model)
    yield model, gate
    gate.open.set()
    gate.remove()


@pytest.mark.parametrize(
    "name,rate,block",
    [
        ("fixture-stream", 44100, 128),
        ("fixture-stream", 48000, 333),
        ("fixture-mono-22k", 44100, 64),
        ("fixture-window", 48000, 512),
        ("fixture-stream", 96000, 1),
    ],
)
def test_without_a_miss_the_output_is_the_offline_output_delayed(models, name, rate, block):
    x = music(0.4, rate, 2, seed=21)
    expected = stemforge.StemSeparator(models[name], gains={"vocals": 0.25})(x, rate)
    sep = stemforge.StemSeparator(models[name], gains={"vocals": 0.25}, realtime=True, engine="python")
    sep.prepare(rate, 2, block_size=block)
    got = run_realtime(sep, x, rate, block)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    assert sep.misses == 0


@pytest.mark.parametrize("rate", [44100, 48000, 96000])
@pytest.mark.parametrize("block", [64, 128, 256])
def test_real_time_latency_of_live(live, rate, block):
    """The price of the worker: each hop's stems are due one hop (live: 256 samples at
    44.1 kHz, 5.8 ms) after the hop is complete, whatever the block up to a hop: live
    within 30 ms at 44.1, 48 and 96 kHz (23.2-23.7 ms when the model runs in the block)."""
    sep = stemforge.StemSeparator(live, stem="vocals", realtime=True, engine="python")
    sep.prepare(rate, 2, block_size=block)
    blocking = stemforge.StemSeparator(live, stem="vocals")
    blocking.prepare(rate, 2)
    headroom = realtime_headroom(live.info, rate, block)
    assert headroom == live.info.hop
    assert sep.latency_samples == latency_of(live.info, rate, headroom=headroom)
    assert blocking.latency_samples < sep.latency_samples <= math.ceil(0.030 * rate)
    assert sep.latency_samples - blocking.latency_samples <= math.ceil(live.info.hop * rate / 44100) + 1


@pytest.mark.parametrize("rate,block", [(44100, 512), (44100, 1000), (48000, 1024), (22050, 300)])
def test_a_block_longer_than_the_headroom_moves_the_due_time_past_it(live, rate, block):
    """Blocks longer than a hop: the stems are due at least a whole block after the hop,
    measured in model samples, with the input resampler's hold-back."""
    headroom = realtime_headroom(live.info, rate, block)
    assert headroom >= block * live.info.sample_rate / rate
    sep = stemforge.StemSeparator(live, stem="vocals", realtime=True, engine="python")
    sep.prepare(rate, 2, block_size=block)
    # the most model samples one block brought, observed: a hop is never due in its own block
    pipe, most = sep._pipeline, 0
    x = music(1.0, rate, 2, seed=22)
    for i in range(0, x.shape[1] - block + 1, block):
        before = pipe._resample_in.push(x[:, i : i + block]).shape[1]
        most = max(most, before)
    assert most <= headroom


def test_the_caller_never_runs_the_model(gated):
    model, gate = gated
    sep = stemforge.StemSeparator(model, stem="vocals", realtime=True, engine="python")
    sep.prepare(44100, 2, block_size=128)
    run_realtime(sep, music(0.3, 44100, 2, seed=23), 44100, 128)
    assert gate.threads == {"stemforge-model"}


def hops_of(out: np.ndarray, hop: int):
    return [out[:, i : i + hop] for i in range(0, out.shape[1] - hop + 1, hop)]


def test_a_late_hop_is_delivered_on_time_with_its_input_in_other(gated):
    """The worker is held: every block still comes back at once, the stems sum to the
    input, the missed hops' input is all in `other`, and each is counted. Let go, the
    worker catches up and the output is the model's again, exactly."""
    model, gate = gated
    rate, block, hop = 44100, 128, model.info.hop
    x = music(1.0, rate, 2, seed=24)
    seps = {
        name: stemforge.StemSeparator(model, realtime=True, engine="python", **kw)
        for name, kw in (("sum", {"gains": {}}), ("other", {"stem": "other"}), ("vocals", {"stem": "vocals"}))
    }
    expected = {
        name: stemforge.StemSeparator(model, **kw)(x, rate)
        for name, kw in (("other", {"stem": "other"}), ("vocals", {"stem": "vocals"}))
    }
    held = x.shape[1] // 2 // block * block  # the worker is stuck in a model call until here

    def hold(sep):
        def before_block(i):
            if i == 0:
                gate.open.clear()
            if i == held:
                gate.open.set()
                assert sep._pipeline.decoupled.wait_idle(timeout=60)

        return before_block

    out = {}
    for name, sep in seps.items():
        sep.prepare(rate, 2, block_size=block)
        out[name] = run_realtime(sep, x, rate, block, keep_up=lambda i: i >= held, before_block=hold(sep))
        latency = sep.latency_samples
        # hops due before the worker was let go: all missed, all counted
        due = model.info.lookahead + hop - 1 + sep._pipeline.headroom
        missed = (held - due) // hop
        assert sep.misses >= missed > 20
    np.testing.assert_allclose(out["sum"], x, atol=1e-6, rtol=0)  # a miss keeps the sum
    first = held - latency - block  # output before this was due while the worker was held
    np.testing.assert_allclose(out["other"][:, :first], x[:, :first], atol=1e-6, rtol=0)
    assert not np.any(out["vocals"][:, :first])
    # after the worker caught up (its state ran through every hop): the model's stems again
    late = held + 2 * hop
    for name in ("other", "vocals"):
        np.testing.assert_allclose(out[name][:, late:], expected[name][:, late:], atol=1e-6, rtol=0)
    assert np.abs(expected["vocals"][:, :first]).max() > 1e-3  # the misses were audible


def test_a_worker_a_whole_ring_behind_starts_afresh(gated):
    """Held longer than its input ring lasts, the worker drops what it has not reached and
    starts afresh at a hop boundary: the stems sum to the input throughout, and once the
    model's context has passed the output is exact again."""
    from stemforge.core.realtime import INPUT_RING_SECONDS

    model, gate = gated
    rate, block = 44100, 512
    # the worker is stuck in its first call, holding at most a ring: two rings and more
    # later, the ring has overflowed whenever that call began
    x = music(2 * INPUT_RING_SECONDS + 2.5, rate, 2, seed=25)
    release = int((2 * INPUT_RING_SECONDS + 0.5) * rate) // block * block

    def hold(i):
        if i == 0:
            gate.open.clear()
        if i == release:
            gate.open.set()

    total = stemforge.StemSeparator(model, gains={}, realtime=True, engine="python")
    total.prepare(rate, 2, block_size=block)
    np.testing.assert_allclose(
        run_realtime(total, x, rate, block, keep_up=False, before_block=hold), x, atol=1e-6, rtol=0
    )
    sep = stemforge.StemSeparator(model, stem="vocals", realtime=True, engine="python")
    sep.prepare(rate, 2, block_size=block)
    got = run_realtime(sep, x, rate, block, keep_up=lambda i: i >= release, before_block=hold)
    assert sep._pipeline.decoupled._worker.gap_end > 0  # the ring did overflow
    expected = stemforge.StemSeparator(model, stem="vocals")(x, rate)
    settled = release + model.info.context + model.info.lookahead + 4 * model.info.hop + block
    np.testing.assert_allclose(got[:, settled:], expected[:, settled:], atol=1e-6, rtol=0)
    due = model.info.lookahead + model.info.hop + sep._pipeline.headroom
    assert sep.misses >= (release - due) // model.info.hop - 1


@pytest.mark.parametrize("stem", ["other", "vocals"])
def test_a_worker_that_wakes_a_whole_ring_late_counts_what_it_skipped_as_misses(models, monkeypatch, stem):
    """A worker thread that first runs after a whole input ring has gone by (a loaded
    machine can keep a thread from running that long) starts afresh past what it never
    read. Every hop before that point is a miss, delivered with the input whole in `other`
    (the fallback stem) and counted, never read from the output ring where the worker
    wrote nothing."""
    from stemforge.core import realtime

    first_run = threading.Event()
    run_once = realtime._Worker._run

    def late(self):  # the worker's first pass waits until the test lets it go
        assert first_run.wait(timeout=60)
        return run_once(self)

    monkeypatch.setattr(realtime._Worker, "_run", late)
    model, rate, block = models["fixture-stream"], 44100, 512
    x = music(realtime.INPUT_RING_SECONDS + 1.5, rate, 2, seed=27)
    release = int((realtime.INPUT_RING_SECONDS + 0.5) * rate) // block * block

    def hold(i):
        if i == release:
            first_run.set()

    sep = stemforge.StemSeparator(model, stem=stem, realtime=True, engine="python")
    sep.prepare(rate, 2, block_size=block)
    got = run_realtime(sep, x, rate, block, keep_up=lambda i: i >= release, before_block=hold)
    fresh = sep._pipeline.decoupled._worker.fresh  # where the worker started afresh
    assert fresh >= release
    assert sep.misses >= fresh // model.info.hop  # every hop before it, none read from the ring
    skipped = fresh - sep.latency_samples  # the same point in the output, its latency undone
    expected = x[:, :skipped] if stem == "other" else np.zeros_like(x[:, :skipped])
    np.testing.assert_array_equal(got[:, :skipped], expected)


def test_a_model_error_in_the_worker_reaches_the_caller(gated):
    model, gate = gated

    def fails(chunk, state):
        raise RuntimeError("boom: the model broke")

    model.step = fails
    sep = stemforge.StemSeparator(model, stem="vocals", realtime=True, engine="python")
    sep.prepare(44100, 2, block_size=256)
    with pytest.raises(RuntimeError, match="boom: the model broke"):
        for _ in range(50):
            sep.process_block(np.full((2, 256), 0.1, np.float32), 44100)
            sep._pipeline.decoupled.wait_idle(timeout=60)


def test_offline_calls_of_a_real_time_separator_stay_exact(models):
    """sep(x) and process(reset=False) never miss: they run the model themselves."""
    x = music(0.5, 48000, 2, seed=26)
    expected = stemforge.StemSeparator(models["fixture-stream"], stem="bass")(x, 48000)
    sep = stemforge.StemSeparator(models["fixture-stream"], stem="bass", realtime=True, engine="python")
    sep.prepare(48000, 2, block_size=128)
    np.testing.assert_array_equal(sep(x, 48000), expected)
    sep.reset()
    parts = [sep.process(x[:, i : i + 1000], 48000, reset=False) for i in range(0, x.shape[1], 1000)]
    got = np.concatenate(parts + [sep.flush()], axis=1)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    assert sep.misses == 0


def test_bad_real_time_settings_are_refused(models):
    with pytest.raises(ValueError, match="headroom must be"):
        stemforge.StemSeparator(models["fixture-stream"], realtime=True, engine="python", headroom=0)
    sep = stemforge.StemSeparator(models["fixture-stream"], realtime=True, engine="python")
    with pytest.raises(ValueError, match="block_size must be"):
        sep.prepare(44100, 2, block_size=0)
