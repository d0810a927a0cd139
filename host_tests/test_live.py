"""`stemforge live`: the real-time loop on a simulated device clock (no audio hardware
exists on the build machines), and the command line around it.

Whether a machine keeps up is a measurement (`bench/live.py`, `stemforge live --simulate`),
not a test: here the device's clock is `SimulatedTime`, which moves only when the loop waits
for a buffer or when a test says a block took so long, so every count below is exact on any
machine, busy or not."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import numpy as np
import pytest
from pedalboard.io import AudioFile

import stemforge
from host_tests.helpers import MODELS, music
from stemforge.apps import live as live_app
from stemforge.apps.live import SimulatedDevice, run_live
from stemforge.core import native

RATE = 44100
PERIOD = 256 / RATE  # one 256-sample buffer, in seconds


class SimulatedTime:
    """A device clock that advances only by the waits of the loop (`sleep`) and by the
    processing time a test injects (`spend`)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds

    def spend(self, seconds: float) -> None:
        self.now += seconds


class Costing:
    """Wraps a processor: block k costs `cost(k)` seconds of simulated time."""

    def __init__(self, processor, clock: SimulatedTime, cost, keep_up: bool = False):
        self.processor, self.clock, self.cost, self.calls = processor, clock, cost, 0
        self.keep_up = keep_up

    def prepare(self, sample_rate, channels, block_size=None):
        self.processor.prepare(sample_rate, channels, block_size=block_size)
        self.latency_samples = self.processor.latency_samples

    def process_block(self, block, sample_rate):
        out = self.processor.process_block(block, sample_rate)
        if self.keep_up:  # a real-time separator's worker finishes its hops between blocks
            assert self.processor.wait_idle(timeout=60)
        self.clock.spend(self.cost(self.calls))
        self.calls += 1
        return out

    @property
    def misses(self) -> int:
        return getattr(self.processor, "misses", 0)

    @property
    def rescued(self) -> int:
        return getattr(self.processor, "rescued", 0)


class Passthrough:
    """The input as it is, at no latency: what the device plays is then the input itself."""

    latency_samples = 0

    def prepare(self, sample_rate, channels, block_size=None):
        pass

    def process_block(self, block, sample_rate):
        return block.copy()


def simulated(x, queue=3, cost=lambda k: 0.0, processor=None, keep_up=False):
    """A SimulatedDevice over `x` (256-sample buffers) on a SimulatedTime, and the processor
    (default: Passthrough) wrapped so that block k costs cost(k) seconds; keep_up: a
    real-time separator's worker finishes every hop between blocks."""
    clock = SimulatedTime()
    device = SimulatedDevice(x, RATE, buffer_size=256, queue=queue, clock=clock, sleep=clock.sleep)
    return device, Costing(processor or Passthrough(), clock, cost, keep_up), clock


@pytest.mark.skipif(native.unavailable() is not None, reason=f"{native.unavailable()}")
def test_a_spare_worker_plays_the_hops_the_first_is_late_for_and_the_summary_says_so(models):
    """The native engine with a spare worker, its first worker held for half the run: no hop is
    missed, the spare's are counted in the summary; without a spare, the advice after misses
    offers one."""
    x = music(1.0, seed=16)
    sep = stemforge.StemSeparator(
        models["fixture-stream"], stem="vocals", realtime=True, engine="native", spare_worker=True
    )
    device, costing, _ = simulated(x, processor=sep, keep_up=True)
    half = x.shape[1] // 256 // 2

    def cost(k):
        if k == 4:
            sep._native.hold(True, spare=False)
        if k == half:
            sep._native.hold(False)
        return 0.0

    costing.cost = cost
    stats = run_live(costing, device)
    assert stats.misses == 0 and stats.rescued >= half - 4 - sep.latency_samples // 256 - 2
    assert f"0 missed hop(s) (the model late: the input passed to other), {stats.rescued} from the spare worker" in (
        stats.summary()
    )
    one = stemforge.StemSeparator(
        models["fixture-stream"], stem="vocals", realtime=True, engine="native", spare_worker=False
    )
    missed = dataclasses.replace(stats, misses=3)
    assert "--spare-worker" in live_app.miss_advice(missed, one)
    assert "--spare-worker" not in live_app.miss_advice(missed, sep)  # it has one


def test_the_live_preset_is_played_block_by_block_at_the_device_pace(live):
    """What is played is the separator's block-by-block output, one buffer per period of
    the device's clock; blocks that cost less than a buffer lasts never under-run."""
    x = music(2.0, seed=11)
    sep = stemforge.StemSeparator(live, stem="vocals", threads=1)
    device, costing, clock = simulated(x, cost=lambda k: 0.9 * PERIOD, processor=sep)
    stats = run_live(costing, device)
    blocks = int(np.ceil(x.shape[1] / 256))
    assert stats.blocks == blocks
    assert (stats.underruns, stats.late_blocks, device.underruns) == (0, 0, 0), stats.summary()
    # paced by the clock: the loop waited for each buffer to be recorded
    assert clock.now == pytest.approx((blocks + 0.9) * PERIOD)
    assert stats.load == pytest.approx(0.9)
    reference = stemforge.StemSeparator(live, stem="vocals", threads=1)
    reference.prepare(RATE, 2)
    expected = np.concatenate(
        [reference.process_block(device.audio[:, i : i + 256], RATE) for i in range(0, x.shape[1], 256)], axis=1
    )
    np.testing.assert_allclose(device.output[:, : expected.shape[1]], expected, atol=1e-5, rtol=0)
    assert stats.latency_samples == sep.latency_samples <= 1024


def test_live_in_real_time_plays_the_separator_delayed_by_its_headroom(live):
    """`stemforge live`'s separator (realtime=True): the worker, kept up with between blocks,
    makes every hop in time, so nothing is missed and what is played is the block-by-block
    output delayed by the headroom (a buffer of 256: a hop more than offline)."""
    x = music(2.0, seed=11)
    sep = stemforge.StemSeparator(live, stem="vocals", threads=1, realtime=True)
    device, costing, _ = simulated(x, cost=lambda k: 0.1 * PERIOD, processor=sep, keep_up=True)
    stats = run_live(costing, device)
    assert (stats.underruns, stats.late_blocks, stats.misses) == (0, 0, 0), stats.summary()
    assert "0 missed hop(s)" in stats.summary()
    reference = stemforge.StemSeparator(live, stem="vocals", threads=1)
    reference.prepare(RATE, 2)
    expected = np.concatenate(
        [reference.process_block(device.audio[:, i : i + 256], RATE) for i in range(0, x.shape[1], 256)], axis=1
    )
    shift = sep.latency_samples - reference.latency_samples
    assert stats.latency_samples == sep.latency_samples and shift == 256
    played = device.output[:, : expected.shape[1]]
    assert not np.any(played[:, :shift])
    np.testing.assert_allclose(played[:, shift:], expected[:, : expected.shape[1] - shift], atol=1e-5, rtol=0)


def test_live_counts_and_reports_the_hops_its_model_missed(models):
    """The worker held for the first half (a model call that never ends in time): the loop
    still plays every buffer on time, the missed hops are counted in its figures and the
    summary, and once let go the worker catches up and misses no more."""
    model = stemforge.load_model(models["fixture-stream"].path)  # a model of its own to patch
    step, gate = model.step, live_app.threading.Event()

    def held_step(chunk, state):
        assert gate.wait(timeout=60)
        return step(chunk, state)

    model.step = held_step
    x = music(1.0, seed=15)
    sep = stemforge.StemSeparator(model, stem="vocals", realtime=True, engine="python")  # its step patched
    device, costing, _ = simulated(x, processor=sep)
    half = x.shape[1] // 256 // 2

    def cost(k):
        if k == half:
            gate.set()
        if k >= half:
            assert sep.wait_idle(timeout=60)
        return 0.0

    costing.cost = cost
    try:
        stats = run_live(costing, device)
    finally:
        gate.set()
    assert (stats.underruns, stats.late_blocks) == (0, 0)
    hop = model.info.hop
    assert (half * 256 - sep.latency_samples) // hop <= stats.misses <= half * 256 // hop + 1
    assert f"{stats.misses} missed hop(s)" in stats.summary()
    # what to do about them: a hop more headroom than the one it had (None: one hop)
    ms = 1000 * hop / model.info.sample_rate
    advice = live_app.miss_advice(stats, sep)
    assert f"give it a hop more with --headroom {2 * hop} ({ms:.1f} ms more latency)" in advice, advice
    assert live_app.miss_advice(dataclasses.replace(stats, misses=0), sep) == ""
    # the held half played no vocals (their input went to other); the second half does
    late = (half + 4) * 256 + sep.latency_samples
    assert not np.any(device.output[:, sep.latency_samples : half * 256])
    assert np.abs(device.output[:, late:]).max() > 1e-3


def test_one_block_slower_than_the_queue_is_exactly_one_under_run():
    """Block 10 takes 3.5 buffers with 3 queued: its buffer is played as silence, once;
    the blocks after it, fast again, catch up (their input was recorded meanwhile)."""
    x = music(0.5, seed=12)
    device, costing, _ = simulated(x, queue=3, cost=lambda k: 3.5 * PERIOD if k == 10 else 0.0)
    stats = run_live(costing, device)
    assert (stats.underruns, stats.late_blocks) == (1, 1), stats.summary()
    assert stats.load == pytest.approx(3.5)
    silent = [k for k, b in enumerate(device.played) if not np.any(b)]
    assert silent == [10]
    for k in (9, 11, stats.blocks - 2):  # the others play the input
        np.testing.assert_array_equal(device.played[k], device.audio[:, 256 * k : 256 * (k + 1)])
    assert "1 under-run(s), 1 late block(s)" in stats.summary()


def test_a_late_block_the_queue_absorbs_is_no_under_run():
    """2.5 buffers with 3 queued: late (a DAW, whose queue is the buffer itself, would drop
    it), but the device still had something to play."""
    x = music(0.5, seed=12)
    device, costing, _ = simulated(x, queue=3, cost=lambda k: 2.5 * PERIOD if k == 10 else 0.0)
    stats = run_live(costing, device)
    assert (stats.underruns, stats.late_blocks) == (0, 1), stats.summary()
    assert not [b for b in device.played if not np.any(b)]


def test_a_processor_slower_than_real_time_is_counted_as_under_runs():
    """Every block takes 1.6 buffers with 2 queued: the first is in time, every later one is
    an under-run (block k is written at 2.6 + 1.6 k buffers, due at 3 + k)."""
    x = music(0.5, seed=12)
    device, costing, _ = simulated(x, queue=2, cost=lambda k: 1.6 * PERIOD)
    stats = run_live(costing, device)
    assert stats.underruns == stats.blocks - 1 == device.underruns
    assert stats.late_blocks == stats.blocks  # each block took longer than a buffer lasts
    assert stats.load == pytest.approx(1.6)
    assert f"{stats.blocks} late block(s)" in stats.summary()
    silent = [k for k, b in enumerate(device.played) if not np.any(b)]
    assert silent == list(range(1, stats.blocks))  # the device played silence for each
    np.testing.assert_array_equal(device.played[0], device.audio[:, :256])


def test_seconds_and_stop_end_the_loop():
    x = music(1.0, seed=12)
    device, costing, _ = simulated(x)
    assert run_live(costing, device, seconds=0.1).blocks == int(np.ceil(0.1 * RATE / 256))
    device, costing, _ = simulated(x)
    stop = live_app.threading.Event()
    stop.set()
    assert run_live(costing, device, stop=stop).blocks == 0


def song(path, seconds: float, rate: int = RATE):
    with AudioFile(str(path), "w", rate, 2, bit_depth=16) as f:
        f.write(music(seconds, rate, seed=13))
    return path


def simulated_cli_clock(monkeypatch) -> SimulatedTime:
    """`stemforge live --simulate` plays on the returned simulated clock, not the wall clock."""
    clock = SimulatedTime()
    monkeypatch.setattr(
        live_app,
        "SimulatedDevice",
        lambda audio, rate, buffer_size, queue, **kw: SimulatedDevice(
            audio, rate, buffer_size, queue, clock=clock, sleep=clock.sleep, **kw
        ),
    )
    return clock


@pytest.mark.parametrize("stall", [None, 3.5])
def test_cli_exits_3_and_reports_under_runs_as_they_happen(tmp_path, monkeypatch, capsys, stall):
    """`stemforge live --simulate` on a simulated clock: a stall of 3.5 buffers inside block
    100 (as when another process takes the core) is one under-run, reported when it happens
    and in the summary, and the exit status is 3; without it, 0 under-runs and status 0."""
    from stemforge.cli import main
    from stemforge.core.processor import StemSeparator

    clock = simulated_cli_clock(monkeypatch)
    process_block, calls = StemSeparator.process_block, []

    def stalling(self, block, sample_rate):
        calls.append(1)
        if stall and len(calls) == 100:
            clock.spend(stall * PERIOD)
        out = process_block(self, block, sample_rate)
        # the model's worker keeps up (the simulated clock does not wait for it): no miss
        assert self.wait_idle(timeout=60)
        return out

    monkeypatch.setattr(StemSeparator, "process_block", stalling)
    code = main(
        [
            "live",
            "--model",
            str(MODELS / "fixture-stream.ts"),
            "--stem",
            "vocals",
            "--simulate",
            str(song(tmp_path / "song.wav", 1.5)),
        ]
    )
    out = capsys.readouterr().out
    assert len(calls) == int(np.ceil(1.5 * RATE / 256))
    if stall:
        assert code == 3, out
        assert "1 under-run(s), 1 late block(s), 0 missed hop(s) so far" in out
        assert "259 buffers of 256: 1 under-run(s), 1 late block(s)" in out
    else:
        assert code == 0, out
        assert "so far" not in out and "259 buffers of 256: 0 under-run(s), 0 late block(s)" in out


@pytest.mark.parametrize("engine", ["auto", "python"])
def test_cli_says_why_python_plays_when_auto_finds_no_native_engine(tmp_path, monkeypatch, capsys, engine):
    """Where the plugin's C++ engine cannot run (here: made unavailable), `--engine auto` plays
    with Python's engine and says why, and what that costs; asked for by name, it says nothing."""
    from stemforge.cli import main
    from stemforge.core import native, processor

    why = "no libstemforge_engine.so here; build it with `python build.py plugin`"
    monkeypatch.setattr(native, "unavailable", lambda: why)
    monkeypatch.setattr(processor, "native_unavailable", lambda: why)
    simulated_cli_clock(monkeypatch)
    args = ["live", "--model", str(MODELS / "fixture-stream.ts"), "--engine", engine, "--simulate"]
    code = main(args + [str(song(tmp_path / "song.wav", 0.5))])
    out = capsys.readouterr().out
    assert code in (0, 3), out
    assert "python engine" in out.splitlines()[0]
    note = f"note: Python's engine plays this, as the plugin's C++ engine cannot run here ({why})"
    assert (note in out) == (engine == "auto"), out


def test_cli_simulate_reports_latency_and_under_runs(tmp_path, live):
    """The real command at the wall clock's pace: how many under-runs this machine has is
    a measurement (it depends on the machine and its load); the report and the exit status
    agree with it."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stemforge",
            "live",
            "--gains",
            "vocals=0",
            "--simulate",
            song(tmp_path / "song.wav", 1.0),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 3), done.stdout + done.stderr
    # the model in a worker thread given a buffer of 256: 256 samples more than offline, in the
    # plugin's engine where the plugin is built (auto), with a spare worker on 2 CPUs or more,
    # else in Python's
    from stemforge.core.processor import usable_cpus

    engine = "python engine" if native.unavailable() else "native engine"
    engine += " and a spare worker" if engine == "native engine" and usable_cpus() >= 2 else ""
    offline = stemforge.StemSeparator(live, threads=1)
    offline.prepare(RATE, 2)
    added = offline.latency_samples + 256
    assert f"{engine}: adds {added} samples ({1000 * added / RATE:.1f} ms) at 44100 Hz" in done.stdout
    underruns = int(re.search(r"173 buffers of 256: (\d+) under-run\(s\), \d+ late block\(s\)", done.stdout).group(1))
    assert done.returncode == (0 if underruns == 0 else 3), done.stdout
    assert "missed hop(s)" in done.stdout


def test_cli_prints_the_latency_at_the_device_rate(tmp_path, live):
    """At 48 kHz (most interfaces) the latency printed is the one at 48 kHz: with the model
    in a worker thread given a buffer of 256, `live`'s 23.7 ms (the low-delay resamplers add
    0.5 ms to its 23.2 ms at 44.1 kHz)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stemforge",
            "live",
            "--stem",
            "vocals",
            "--engine",
            "python",
            "--realtime-priority",
            "--simulate",
            song(tmp_path / "song48.wav", 1.0, 48000),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 3), done.stdout + done.stderr
    from stemforge.core.pipeline import latency_of, realtime_headroom

    info = live.info
    at48 = latency_of(info, 48000, headroom=realtime_headroom(info, 48000, 256))
    at44 = latency_of(info, RATE, headroom=realtime_headroom(info, RATE, 256))
    assert at48 * RATE != at44 * 48000  # not the 44.1 kHz figure scaled: the resamplers add theirs
    assert f"python engine: adds {at48} samples ({1000 * at48 / 48000:.1f} ms) at 48000 Hz" in done.stdout
    assert "real-time priority: " in done.stdout  # granted, or why not
    assert "late block(s)" in done.stdout


def test_cli_errors_say_what_to_do(tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "stemforge", "live", *map(str, args)], capture_output=True, text=True, timeout=300
        )

    done = run("--list-devices")
    assert done.returncode == 0 and "inputs:" in done.stdout and "outputs:" in done.stdout
    done = run("--gains", "vocals:0", "--simulate", tmp_path / "x.wav")
    assert done.returncode == 1 and "STEM=GAIN" in done.stderr
    done = run("--stem", "voice", "--simulate", tmp_path / "x.wav")
    assert done.returncode == 1 and "voice" in done.stderr
    done = run("--stem", "vocals", "--input", "no such interface", "--output", "nor this")
    assert done.returncode == 1 and "--list-devices" in done.stderr


def test_cli_simulate_refuses_a_file_holding_nan_clearly(tmp_path):
    x = music(0.5, seed=3)
    x[1, 10000] = np.nan
    path = tmp_path / "nan.wav"
    with AudioFile(str(path), "w", RATE, 2, bit_depth=32) as f:
        f.write(x)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stemforge",
            "live",
            "--model",
            "fixture-stream",
            "--stem",
            "vocals",
            "--simulate",
            path,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{path} holds NaN or Inf (first at sample 10000, channel 1, 0.227 s in)" in done.stderr
    with pytest.raises(ValueError, match="holds NaN or Inf"):
        SimulatedDevice(x, RATE)


def test_cli_simulate_refuses_more_than_two_channels_clearly(tmp_path):
    six = tmp_path / "six_channels.wav"
    with AudioFile(str(six), "w", RATE, 6, bit_depth=16) as f:
        f.write(np.tile(music(0.5, seed=2)[:1], (6, 1)))
    done = subprocess.run(
        [sys.executable, "-m", "stemforge", "live", "--stem", "vocals", "--simulate", six],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "6 channels" in done.stderr and "mono or stereo" in done.stderr
    # the library says the same before any audio is played
    with pytest.raises(ValueError, match="6 channels.*mono or stereo"):
        SimulatedDevice(np.zeros((6, 1024), np.float32), RATE)


def test_cli_headroom_trades_latency(tmp_path, monkeypatch, capsys):
    """`stemforge live --headroom 64` at 64-sample buffers: the model has 64 samples for a hop
    instead of a hop's 256, and the latency it prints is that much lower."""
    from stemforge.cli import main
    from stemforge.core.processor import StemSeparator

    simulated_cli_clock(monkeypatch)
    process_block = StemSeparator.process_block

    def keeping_up(self, block, sample_rate):
        out = process_block(self, block, sample_rate)
        assert self.wait_idle(timeout=60)  # the simulated clock does not wait for the worker
        return out

    monkeypatch.setattr(StemSeparator, "process_block", keeping_up)
    path, adds = song(tmp_path / "song.wav", 0.5), {}
    for headroom in ([], ["--headroom", "64"]):
        args = ["live", "--model", str(MODELS / "fixture-stream.ts"), "--stem", "vocals", "--buffer-size", "64"]
        assert main([*args, *headroom, "--simulate", str(path)]) == 0
        out = capsys.readouterr().out
        adds[bool(headroom)] = int(re.search(r" engine(?: and a spare worker)?: adds (\d+) ", out).group(1))
    hop = stemforge.load_model(MODELS / "fixture-stream.ts").info.hop
    assert adds[False] - adds[True] == hop - 64 > 0
