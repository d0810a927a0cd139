"""Issue 22 in Python with the plugin's engine: StemSeparator(realtime=True, engine="native")
runs process_block through libstemforge_engine.so (stemforge.core.native), the VST3's own C++
data path, and gives what engine="python" gives: the same latency, the offline output delayed,
a missed hop's input whole in `other`.

As in test_realtime_decoupled.py, nothing depends on the machine's speed: "the worker keeps
up" is made true by waiting for it between blocks, "the worker is late" by holding it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import stemforge
from host_tests.helpers import ROOT, music, run_realtime
from stemforge.core import native

WHY = native.unavailable()
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"{WHY}")  # CI builds the plugin first


@pytest.mark.parametrize(
    "name,rate,channels,block,prepared,headroom",
    [
        ("fixture-stream", 44100, 2, 128, 128, None),
        ("fixture-stream", 48000, 2, 333, 333, None),
        ("fixture-stream", 44100, 1, 64, 64, None),  # a mono host
        ("fixture-mono-22k", 44100, 2, 64, 64, None),
        ("fixture-window", 48000, 2, 512, 512, None),
        ("fixture-stream", 96000, 2, 1, None, None),
        # less latency than a hop's headroom, and more
        ("fixture-stream", 44100, 2, 64, 64, 64),
        ("fixture-stream", 48000, 2, 100, 100, 150),
        ("fixture-stream", 96000, 2, 37, None, 40),
        ("fixture-stream", 48000, 2, 256, 256, 700),
    ],
)
def test_the_native_engine_gives_the_offline_output_delayed(models, name, rate, channels, block, prepared, headroom):
    x = music(0.4, rate, channels, seed=41)
    gains = {"vocals": 0.25, "drums": 1.5}
    expected = stemforge.StemSeparator(models[name], gains=gains)(x, rate)
    sep = stemforge.StemSeparator(models[name], gains=gains, realtime=True, engine="native", headroom=headroom)
    sep.prepare(rate, channels, block_size=prepared)
    python = stemforge.StemSeparator(models[name], gains=gains, realtime=True, engine="python", headroom=headroom)
    python.prepare(rate, channels, block_size=prepared)
    assert sep.latency_samples == python.latency_samples  # one latency, whichever engine
    if headroom is not None:  # the headroom asked for is the latency's part beyond the default's
        default = stemforge.StemSeparator(models[name], realtime=True, engine="native")
        default.prepare(rate, channels, block_size=prepared)
        assert (sep.latency_samples < default.latency_samples) == (headroom < models[name].info.hop)
    got = run_realtime(sep, x, rate, block)
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(got, expected, atol=2e-6, rtol=0)
    assert sep.misses == 0


def test_blocks_longer_than_prepared_come_back_whole(models):
    """A host that sends more than it said: the block goes through the engine in pieces of the
    prepared size, and comes back whole. Hops that come due inside it may be missed (the worker
    had no block's time for them), so only what holds either way is asserted: all the stems
    at 1 are the input, delayed."""
    rate, block = 48000, 1000
    x = music(0.5, rate, 2, seed=46)
    sep = stemforge.StemSeparator(models["fixture-stream"], gains={}, realtime=True, engine="native")
    sep.prepare(rate, 2, block_size=256)
    np.testing.assert_allclose(run_realtime(sep, x, rate, block), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "rate,block,seconds,held,settle",
    [
        (44100, 128, 1.5, (40 * 128, 200 * 128), 2 * 128),  # late hops: the worker catches up
        # a whole 2-s input ring behind: the worker drops what it has not reached and its model
        # starts afresh; its resampler (48 kHz) goes on through silence in the dropped part's
        # place, so the stems stay in step and are exact again once the model's context is past
        (48000, 256, 5.0, (93 * 256, 656 * 256), 24000),
    ],
    ids=["late-hops", "a-ring-behind"],
)
def test_a_held_worker_misses_counts_keeps_the_sum_and_is_exact_again(models, rate, block, seconds, held, settle):
    """The worker held (from and to these samples of the padded input): the blocks still come
    back on time, the hops due meanwhile have their input in `other` (an acapella is silent
    there, the sum of the stems is the input) and are counted; let go, the output is the
    offline output again."""
    x = music(seconds, rate, 2, seed=42)
    outs = {}
    for what, kwargs in (("vocals", {"stem": "vocals"}), ("all", {"gains": {}})):
        sep = stemforge.StemSeparator(models["fixture-stream"], realtime=True, engine="native", **kwargs)
        sep.prepare(rate, 2, block_size=block)

        def hold(i, sep=sep):
            if i == held[0]:
                sep._native.hold(True)
            if i == held[1]:
                sep._native.hold(False)

        outs[what] = run_realtime(sep, x, rate, block, keep_up=lambda i: not held[0] <= i < held[1], before_block=hold)
        latency, hop = sep.latency_samples, models["fixture-stream"].info.hop
        assert sep.misses >= (held[1] - held[0]) * 44100 // rate // hop - (latency // hop + 2)
    due = slice(held[0] + block, held[1] - sep.latency_samples)  # due while held, in output time
    np.testing.assert_allclose(outs["all"], x, atol=1e-5, rtol=0)  # the stems still sum to the input
    assert np.abs(x[:, due]).max() > 1e-3
    assert not np.any(outs["vocals"][:, due])  # the missed hops' input went to other
    expected = stemforge.StemSeparator(models["fixture-stream"], stem="vocals")(x, rate)
    after = held[1] + settle
    assert np.abs(expected[:, after:]).max() > 1e-3
    np.testing.assert_allclose(outs["vocals"][:, after:], expected[:, after:], atol=2e-6, rtol=0)


@pytest.mark.parametrize("rate,block,channels", [(44100, 128, 2), (48000, 200, 1)])
def test_a_spare_worker_delivers_what_a_held_worker_misses_exactly(models, rate, block, channels):
    """With a spare worker, the first held for a while: no hop is missed, those due meanwhile
    come from the spare (counted), and the output is the offline output throughout, the same
    samples. Waiting between blocks for the worker that is not held keeps it up, so nothing
    depends on the machine's speed."""
    x = music(1.5, rate, channels, seed=48)
    held = (40 * block, 200 * block)
    sep = stemforge.StemSeparator(
        models["fixture-stream"], stem="vocals", realtime=True, engine="native", spare_worker=True
    )
    sep.prepare(rate, channels, block_size=block)

    def hold(i):
        if i == held[0]:
            sep._native.hold(True, spare=False)
        if i == held[1]:
            sep._native.hold(False)

    got = run_realtime(sep, x, rate, block, before_block=hold)
    expected = stemforge.StemSeparator(models["fixture-stream"], stem="vocals")(x, rate)
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(got, expected, atol=2e-6, rtol=0)
    assert sep.misses == 0
    hop = models["fixture-stream"].info.hop
    assert sep.rescued >= (held[1] - held[0]) * 44100 // rate // hop - (sep.latency_samples // hop + 2)
    sep.reset()
    assert sep.rescued == 0  # a new stream's count


def test_with_both_workers_held_the_hops_are_missed_and_the_sum_kept(models):
    rate, block = 44100, 128
    x = music(1.0, rate, 2, seed=49)
    held = (40 * block, 160 * block)
    sep = stemforge.StemSeparator(models["fixture-stream"], gains={}, realtime=True, engine="native", spare_worker=True)
    sep.prepare(rate, 2, block_size=block)

    def hold(i):
        if i == held[0]:
            sep._native.hold(True)  # the spare too
        if i == held[1]:
            sep._native.hold(False)

    got = run_realtime(sep, x, rate, block, keep_up=lambda i: not held[0] <= i < held[1], before_block=hold)
    np.testing.assert_allclose(got, x, atol=1e-5, rtol=0)  # the stems still sum to the input
    hop = models["fixture-stream"].info.hop
    assert sep.misses >= (held[1] - held[0]) // hop - (sep.latency_samples // hop + 2)


def test_a_spare_worker_keeps_the_latency_is_the_default_on_two_cpus_and_needs_the_native_engine(models):
    from stemforge.core.processor import usable_cpus

    one = stemforge.StemSeparator(models["fixture-stream"], realtime=True, engine="native", spare_worker=False)
    two = stemforge.StemSeparator(models["fixture-stream"], realtime=True, engine="native", spare_worker=True)
    for sep in (one, two):
        sep.prepare(48000, 2, block_size=256)
    assert one.latency_samples == two.latency_samples and one.rescued == 0
    assert (one.spare_worker, two.spare_worker, two._native.spare) == (False, True, True)
    default = stemforge.StemSeparator(models["fixture-stream"], realtime=True, engine="native")
    assert default.spare_worker == (usable_cpus() >= 2)
    # where it cannot run, the default is none, and asking for one says why
    for kwargs in ({"realtime": True, "engine": "python"}, {}):
        assert stemforge.StemSeparator(models["fixture-stream"], **kwargs).spare_worker is False
        with pytest.raises(ValueError, match="spare_worker=True needs realtime=True and the native engine"):
            stemforge.StemSeparator(models["fixture-stream"], spare_worker=True, **kwargs)


@pytest.mark.parametrize("layout", ["channels-first", "channels-last"])
def test_one_call_per_block_gives_the_general_paths_samples(models, layout):
    """Once the stream runs, a float32 block of its layout takes one call into the engine (the
    copies, the NaN check and the mix in C++; here channels-last blocks are strided views);
    any other block the general path (here float64). The same samples either way, and a block
    with NaN is refused by both with where it is, the stream going on as if it never came."""
    rate, block, nan_at = 48000, 200, 4000
    x = music(0.4, rate, 2, seed=47)
    last = layout == "channels-last"

    def stream(dtype):
        sep = stemforge.StemSeparator(
            models["fixture-stream"], gains={"vocals": 0.25, "drums": 1.5, "bass": 0.0}, realtime=True, engine="native"
        )
        sep.prepare(rate, 2, layout=layout, block_size=block)
        out = []
        for i in range(0, x.shape[1], block):
            b = (x[:, i : i + block].T if last else x[:, i : i + block]).astype(dtype, copy=False)
            if i == nan_at:
                bad = b.copy()
                bad[(7, 1) if last else (1, 7)] = np.nan
                with pytest.raises(ValueError, match="first at sample 7, channel 1"):
                    sep.process_block(bad, rate)
            out.append(sep.process_block(b, rate))
            assert out[-1].shape == b.shape and out[-1].dtype == np.float32
            assert sep.wait_idle(timeout=60)
            if dtype == np.float32:  # the stream is going: no float32 block takes the general path
                sep._native_block = lambda x: pytest.fail("a float32 block took the general path")
        assert sep.misses == 0
        return np.concatenate(out, axis=0 if last else 1)

    one_call, general = stream(np.float32), stream(np.float64)
    assert np.abs(one_call).max() > 1e-3
    np.testing.assert_array_equal(one_call, general)


def test_the_mixer_takes_only_what_the_engine_can_take_as_it_is(models):
    """NativeEngine.mixer, process_block's one call a block (PythonMixer.cpp): the mix for a
    float32 block of the engine's channels and rate in either layout; None for anything else
    (process_block's general path then converts it, or says what is wrong with it); refused
    while another thread holds the separator's lock; refused once its engine is closed."""
    rate, block = 44100, 128
    engine = native.NativeEngine(models["fixture-stream"].path, rate, 2, block)
    lock = threading.RLock()
    mix = engine.mixer(np.array([0.0, 0.0, 0.0, 1.0]), 0.5, lock, "held elsewhere")
    assert mix is not None, "build.py plugin builds the mixer for the Python that runs it"
    x = music(0.1, rate, 2, seed=49)[:, :block].astype(np.float32)
    nan = x.copy()
    nan[1, 7] = np.nan

    class Subclass(np.ndarray):
        pass

    for declined in (
        x.astype(np.float64),
        x.astype(">f4"),
        x[None],
        x[0],
        x[:, :2].copy(),  # square: the stream's layout says which axis is which
        x[:, :0],
        np.concatenate([x, x], axis=1),  # longer than the engine's blocks
        np.concatenate([x, x, x]),  # three channels
        x.view(Subclass),
        x.tolist(),
        nan,
    ):
        assert mix(declined, rate) is None
    assert mix(x, 48000) is None and mix(x, "44100") is None and mix(x, None) is None
    assert mix(x, rate).shape == (2, block) and mix(x, float(rate)).dtype == np.float32
    assert mix(np.ascontiguousarray(x.T), np.float64(rate)).shape == (block, 2)
    assert mix(x[:, ::2], rate).shape == (2, block // 2)  # strided
    with pytest.raises(TypeError, match="block, sample_rate"):
        mix(x)

    inside, leave = threading.Event(), threading.Event()

    def hold():
        with lock:
            inside.set()
            leave.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(60)
    with pytest.raises(RuntimeError, match="held elsewhere"):
        mix(x, rate)
    leave.set()
    holder.join()
    with lock:  # the thread inside a call may call on
        assert mix(x, rate) is not None
    engine.close()
    with pytest.raises(RuntimeError, match="engine was closed"):
        mix(x, rate)


def test_a_bundle_without_this_pythons_mixer_gives_the_same_samples(models, monkeypatch):
    """A bundle built by another Python has no mixer for this one: every block then takes the
    general path, with the same samples."""
    rate, block = 44100, 128
    x = music(0.2, rate, 2, seed=51)

    def stream():
        sep = stemforge.StemSeparator(models["fixture-stream"], stem="vocals", realtime=True, engine="native")
        sep.prepare(rate, 2, block_size=block)
        out = run_realtime(sep, x, rate, block)
        assert (sep._fast is None) == (native._MIXER is None)  # which path the blocks took
        return out

    with_mixer = stream()
    monkeypatch.setattr(native, "_MIXER", None)
    np.testing.assert_array_equal(stream(), with_mixer)


def test_a_block_while_another_thread_is_inside_is_refused(models):
    rate, block = 48000, 256
    sep = stemforge.StemSeparator(models["fixture-stream"], stem="vocals", realtime=True, engine="native")
    sep.prepare(rate, 2, block_size=block)
    x = music(0.1, rate, 2, seed=50)[:, :block]
    sep.process_block(x, rate)  # the stream runs: the next float32 blocks take the one call
    inside, leave = threading.Event(), threading.Event()

    def hold():
        with sep._busy:  # as a reset() in another thread holds it
            inside.set()
            leave.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(60)
    for b in (x, x.astype(np.float64)):  # the one call and the general path
        with pytest.raises(RuntimeError, match="already processing a call in another thread"):
            sep.process_block(b, rate)
    leave.set()
    holder.join()
    assert sep.process_block(x, rate).shape == x.shape


def test_reset_starts_a_new_stream(models):
    rate, block = 48000, 256
    x, other = music(0.3, rate, 2, seed=43), music(0.3, rate, 2, seed=44)
    sep = stemforge.StemSeparator(models["fixture-stream"], stem="vocals", realtime=True, engine="native")
    sep.prepare(rate, 2, block_size=block)
    run_realtime(sep, other, rate, block)
    sep.reset()
    fresh = stemforge.StemSeparator(models["fixture-stream"], stem="vocals", realtime=True, engine="native")
    fresh.prepare(rate, 2, block_size=block)
    np.testing.assert_array_equal(run_realtime(sep, x, rate, block), run_realtime(fresh, x, rate, block))
    assert sep.misses == 0


def test_process_and_offline_calls_stay_in_python_and_exact(models):
    """A native real-time separator still streams and separates whole arrays (in Python)."""
    x = music(0.3, 44100, 2, seed=45)
    sep = stemforge.StemSeparator(models["fixture-stream"], stem="vocals", realtime=True, engine="native")
    plain = stemforge.StemSeparator(models["fixture-stream"], stem="vocals")
    np.testing.assert_allclose(sep(x, 44100), plain(x, 44100), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "kwargs,says",
    [
        ({"engine": "rust"}, "engine must be one of auto, python, native"),
        ({"engine": "native"}, "needs realtime=True"),
        ({"engine": "native", "realtime": True, "resampling": "hq"}, "resampling='low-delay'"),
    ],
)
def test_settings_the_native_engine_cannot_take_are_refused(models, kwargs, says):
    with pytest.raises(ValueError, match=says):
        stemforge.StemSeparator(models["fixture-stream"], **kwargs)


def test_without_a_built_plugin_native_says_what_to_do(models, monkeypatch, tmp_path):
    monkeypatch.setattr(native, "_LOADED", None)
    monkeypatch.setattr(native, "bundle_candidates", lambda: [tmp_path / "stemforge.vst3"])
    with pytest.raises(FileNotFoundError, match="python build.py plugin"):
        stemforge.StemSeparator(models["fixture-stream"], realtime=True, engine="native")
    assert "python build.py plugin" in native.unavailable()
    # the default then runs Python's engine, which needs nothing built
    sep = stemforge.StemSeparator(models["fixture-stream"], stem="vocals", realtime=True)
    assert sep.engine == "python"
    sep.prepare(44100, 2, block_size=128)
    assert run_realtime(sep, music(0.2, 44100, 2, seed=48), 44100, 128).shape == (2, 8820)


@pytest.mark.parametrize(
    "kwargs,engine",
    [
        ({"realtime": True}, "native"),
        ({"realtime": True, "headroom": 100}, "native"),
        ({}, "python"),  # offline: the model runs in the calling thread, in Python
        ({"realtime": True, "resampling": "hq"}, "python"),
    ],
)
def test_the_default_engine_is_native_where_it_can_run(models, kwargs, engine):
    assert stemforge.StemSeparator(models["fixture-stream"], **kwargs).engine == engine


def test_the_binding_matches_the_engines_header():
    """core/native.py restates EngineApi.h's constants and struct for ctypes: they must agree."""
    import re

    header = (ROOT / "plugin" / "vst3" / "Source" / "EngineApi.h").read_text()
    defined = dict(re.findall(r"#define (SF_\w+) (\d+)", header))
    assert int(defined["SF_ENGINE_ABI"]) == native.ENGINE_ABI == native.engine_library().sf_abi()
    assert int(defined["SF_RESET_NOT_READY"]) == native.RESET_NOT_READY
    assert int(defined["SF_MAX_STEMS"]) == native.MAX_STEMS
    assert int(defined["SF_ERROR_CHARS"]) == native.ERROR_CHARS
    struct = header[header.index("typedef struct {") : header.index("} sf_model_info;")]
    fields = re.findall(r"\b(?:char|int) (\w+)", struct)
    assert fields == [name for name, _ in native.EngineModelInfo._fields_]
    struct = header[
        header.index("typedef struct {", header.index("} sf_model_info;")) : header.index("} sf_worker_times;")
    ]
    fields = [name for line in re.findall(r"(?:long long|double) ([\w, ]+);", struct) for name in line.split(", ")]
    assert fields == [name for name, _ in native.WorkerTimes._fields_]


def test_a_library_of_another_interface_says_rebuild(monkeypatch):
    """A bundle built before an upgrade: its library lacks the newer functions, and loading it
    says to rebuild instead of failing on the first function it lacks."""
    monkeypatch.setattr(native, "_LOADED", None)
    monkeypatch.setattr(native, "ENGINE_ABI", native.ENGINE_ABI + 1)
    monkeypatch.setitem(native._SIGNATURES, "sf_engine_of_a_later_interface", (None, []))
    with pytest.raises(RuntimeError, match="rebuild the plugin"):
        native.engine_library()


def test_the_worker_gives_an_account_of_its_time(models):
    """StemSeparator.worker_times, the worker's own account: a model call a hop; a worker held
    after the audio thread woke it says how long it waited, that its run ended past the
    headroom, and what the system saw of that run; a reset starts the account afresh; without a
    worker there is none."""
    rate, block = 44100, 128
    model = models["fixture-stream"]
    hop = model.info.hop
    assert model.sample_rate == rate  # so that host samples are model samples
    sep = stemforge.StemSeparator(model, stem="vocals", realtime=True, engine="native")
    sep.prepare(rate, 2, block_size=block)
    x = music(0.5, rate, 2, seed=47)
    start = x.shape[1] - 8 * hop
    for i in range(0, start, block):
        sep.process_block(x[:, i : i + block], rate)
    assert sep.wait_idle(timeout=60)
    before = sep.worker_times()
    for i in range(start, x.shape[1], block):  # 8 hops more, a block at a time, waited for
        sep.process_block(x[:, i : i + block], rate)
        assert sep.wait_idle(timeout=60)
    times = sep.worker_times()
    assert times["calls"] - before["calls"] == 8
    assert 0 < times["runs"] <= x.shape[1] // block
    assert 0 <= times["late_runs"] <= times["runs"]
    for what in ("wait", "run", "call"):
        assert 0 <= times[f"{what}_mean"] <= times[f"{what}_max"]
        assert times[f"{what}_p99"] <= times[f"{what}_max"]

    sep.reset()
    sep._native.hold(True)  # the worker cannot start while held
    for i in range(0, 4 * hop, block):  # hops complete: the audio thread wakes it
        sep.process_block(x[:, i : i + block], rate)
    held = 0.05
    threading.Event().wait(held)
    sep._native.hold(False)
    assert sep.wait_idle(timeout=60)
    times = sep.worker_times()
    assert 4 <= times["calls"] < before["calls"]  # the new stream's hops only
    assert times["wait_max"] >= held and times["late_runs"] >= 1  # a hop's headroom is 5.8 ms
    # what the system saw of the late runs: the hold in their span; the worker blocked on the
    # hold (asleep), so the scheduler's delay is within the span, and no fault is negative
    assert times["late_span"] >= held
    delay = times["late_sched_delay"]
    assert (delay != -1) == Path("/proc/thread-self/schedstat").exists()  # -1: not known here
    assert delay == -1 or 0 <= delay <= times["late_span"] + 1e-3, times
    assert times["late_faults"] >= 0

    assert stemforge.StemSeparator(model, stem="vocals").worker_times() is None
    offline = native.NativeEngine(model.path, rate, 2, block, realtime=False)
    assert offline.worker_times() is None
    offline.close()
