"""Real time on this machine: the model's bare cost per hop, and what the audio thread spends per
block in the VST3 and in Python's StemSeparator(realtime=True), apart from the model.

    python -m bench.plugin [--seconds 20] [--models live] [--blocks 128,256] [--rates 44100,48000]
                           [--realtime-priority] [--headroom N[,N...]] [--device-periods 2]
                           [--cpu-wakeup-latency US] [--spare-worker off|on|both]

First the CPU model and the bare model call per hop (TorchScript forward, one torch thread):
one hop per call, as real time runs it, and 16 hops in one call (batched, as file renders run it);
also after torch.jit.freeze + optimize_for_inference, for comparison. Then per block, blocks
paced at the device's rate: the VST3 played in real-time mode by a JUCE host
(plugin/vst3/tests/rt_bench.cpp, `stemforge_rt_bench --bench`, built on demand in the plugin's
CMake tree), and Python's
`StemSeparator(realtime=True).process_block` with each engine: engine="python" (the worker a
Python thread) and engine="native" (the plugin's C++ engine); for each the audio thread's time per block (mean,
p99, max), the blocks over their duration ("late"), the hops the worker missed, and the audio
thread's p99 as a share of the bare one-hop call (issue 22's target: at most 30 %). Apart from
the audio thread, each row gives the worker's model call (mean, p99), and for the plugin's engine
(the VST3 and engine="native") the worker's own account (`StemSeparator.worker_times`, the
plugin's STEMFORGE_VERBOSE line): its runs that ended more than the headroom after the audio
thread woke it (each such run is a miss or more), how long after that call they started
(waited: the machine not running the worker's CPU) and how long they took (ran); for the late
runs, their time summed, how much of it the system's own scheduler kept the worker waiting,
and its page faults in them (neither: the VM's hypervisor held it).
`--headroom` gives the worker more or less time per hop (the plugin's rows where it is 1 or 2
hops: its `margin`). The plugin and the native engine run a spare worker beside the first, as
they do by default on 2 CPUs or more (the plugin's `spare worker`, StemSeparator(spare_worker=)):
their rows say how many hops came from it; `--spare-worker off` plays them with one worker
("one worker" rows), `both` each way.

The machine's part, in the same run: how many blocks the audio thread *started* more than 1 ms
after their place on the device's clock, and the latest. Between blocks that thread only sleeps,
so a late start is the machine holding it back (on a VM, the hypervisor stopping the virtual
CPUs), which no engine can prevent; the late blocks and misses within 50 ms after such a start
are counted apart from the rest (Python's misses per block; the plugin reports its misses for the
whole stream, which are told apart only when no block started late). A start later than the
device's buffer allows (`--device-periods`, 2 blocks) means the device ran dry, as a sound card
does when its host is held back that long: that lost time is not played back later, the stream
goes on from the next block, and the row counts how often. On a VM whose kernel counts it, the
row also gives the CPU time the hypervisor took from the virtual CPUs while it played
(/proc/stat's steal, summed over the CPUs, in 10 ms ticks). `--realtime-priority`
runs the audio threads at SCHED_FIFO, as a DAW does (root or an rtprio limit); the worker follows
one step below. Build the plugin first: python build.py plugin.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np

from bench.signals import music

ROOT = Path(__file__).resolve().parents[1]
RATE = 44100
# A block that starts this much after its place on the device's clock was held back by the
# machine (the audio thread only sleeps between blocks); the misses and late blocks within
# STALL_WINDOW after one (the headroom of one hop, 5.8 ms, and the catch-up) are counted apart.
STALL = 1e-3
STALL_WINDOW = 0.05
# Blocks a device's buffer holds (JACK's ALSA driver's default, `jackd -d alsa -n 2`): how late a
# block may start before the device runs dry (see paced).
DEVICE_PERIODS = 2


def timed(call, x: np.ndarray, block: int, warm: int = 20) -> np.ndarray:
    """Seconds per call of `call` on each block of `x`, back to back (the first `warm` untimed)."""
    times = []
    for i, start in enumerate(range(0, x.shape[1] - block + 1, block)):
        t0 = time.perf_counter()
        call(x[:, start : start + block])
        if i >= warm:
            times.append(time.perf_counter() - t0)
    return np.array(times)


def paced(
    call,
    x: np.ndarray,
    block: int,
    rate: int,
    observe=None,
    periods: int = DEVICE_PERIODS,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`call` on each block of `x` at the times a device clock of `rate` gives them, as a real
    callback runs: (seconds per call, seconds each call started after its place on the clock,
    `observe()` after each call, or zeros, and whether the device had run dry before each block).

    The device holds `periods` blocks, as a sound card's buffer does (JACK's ALSA driver: 2 by
    default). A block that starts up to `periods - 1` blocks late finds that many blocks free,
    and the blocks owed follow back to back until the clock is caught up, as rt_bench.cpp does.
    A block that starts later than that finds the device run dry (an xrun): what should have
    played meanwhile is lost whatever the plugin does, the host does not play it back later, and
    the clock starts again from this block, as hosts restart a stream after an xrun. `periods=0`
    is a device that never runs dry: every block owed is played back to back (this bench before
    2026-12-05, which after a long stall of the machine asked the worker for hops no host would
    have asked for). (Back to back at SCHED_FIFO a loop would use its whole core, and Linux
    throttles real-time threads that do: 50 ms of every second by default,
    kernel.sched_rt_runtime_us.) `clock` and `sleep` are the device's time (the tests give a
    simulated one).

    The blocks are cut out of `x` before the clock starts, as rt_bench.cpp fills the host's
    buffer before it times the plugin: handing over the buffer is the host's work. (Cut inside
    the timed span, the numpy view alone had a p99 of 0.15-0.19 ms on a 2-core VM, a quarter of
    the bare model call there, after each block's sleep.)"""
    n = x.shape[1] // block
    blocks = [x[:, b * block : (b + 1) * block] for b in range(n)]
    times, late, seen, dry = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, bool)
    period, origin = block / rate, clock()
    for b in range(n):
        given = blocks[b]
        t0 = clock()
        call(given)
        t1 = clock()
        times[b], late[b] = t1 - t0, max(0.0, t0 - (origin + b * period))
        if periods > 0 and late[b] > (periods - 1) * period:
            dry[b], origin = True, t0 - b * period  # the stream starts again with this block
        if observe is not None:
            seen[b] = observe()
        wait = origin + (b + 1) * period - clock()
        if wait > 0:
            sleep(wait)
    return times, late, seen, dry


def after_stall(late: np.ndarray, block: int, rate: int, within: float = STALL_WINDOW) -> np.ndarray:
    """For each block: whether a block in the `within` seconds before it, or itself, started more
    than STALL late (the machine held the audio thread back; the worker, on the same machine, is
    then as likely to have been held back)."""
    stalled = late > STALL
    span = max(1, int(np.ceil(within * rate / block)))
    reach = np.convolve(stalled.astype(float), np.ones(span), mode="full")[: len(late)]
    return reach > 0


def design() -> None:
    """The measurement behind the choice in docs/architecture.md (a C++ port of the engine, not
    the block engine scripted into the model file): what one host block costs when no hop is complete, in the
    plugin (C++ FIFOs, resampler, delay lines), against only the hop FIFO written in TorchScript
    and called once per block (a scripted engine would pay that on every block, and still need
    soxr, the delay lines and the latency bound outside the model)."""
    import pedalboard
    import torch

    import stemforge

    class HopFifo(torch.nn.Module):
        def __init__(self, hop: int):
            super().__init__()
            self.hop = hop

        def forward(self, x: torch.Tensor, pending: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
            pending = torch.cat([pending, x], dim=-1)
            n = pending.shape[-1] // self.hop * self.hop
            return pending[..., :n], pending[..., n:]

    torch.set_num_threads(1)
    fifo = torch.jit.script(HopFifo(256))
    x, pending, times = torch.zeros(1, 2, 128), torch.zeros(1, 2, 0), []
    with torch.inference_mode():
        for _ in range(3000):
            t0 = time.perf_counter()
            _, pending = fifo(x, pending)
            times.append(time.perf_counter() - t0)
    print(f"scripted hop FIFO alone, per 128-sample block: median {1e6 * np.median(times[100:]):.1f} us")
    plugin = pedalboard.load_plugin(str(stemforge.plugin_path()))
    plugin.model = "live"
    audio = np.zeros((2, RATE * 5), np.float32)
    plugin.process(audio[:, :128], RATE, buffer_size=128, reset=True)
    plugin.reset()
    t = timed(lambda c: plugin.process(c, RATE, buffer_size=128, reset=False), audio, 128)
    gain = pedalboard.Gain(0.0)
    g = timed(lambda c: gain.process(c, RATE, buffer_size=128, reset=False), audio, 128)
    print(
        f"VST3 (live) per 128-sample block without a model call: {1e6 * np.min(t):.1f} us "
        f"(pedalboard's own per-call cost: {1e6 * np.median(g):.1f} us)"
    )


def hold_wakeup_latency(microseconds: int):
    """Ask the kernel to keep every CPU able to wake up within `microseconds` (PM QoS through
    /dev/cpu_dma_latency, as cyclictest does by default and real-time audio setups do): idle CPUs
    then poll instead of halting. Held while the returned file stays open; (file or None, what
    happened)."""
    import struct

    try:
        held = open("/dev/cpu_dma_latency", "wb", buffering=0)
        held.write(struct.pack("i", microseconds))
    except OSError as error:
        return None, f"CPU wake-up latency not held ({error.strerror}: /dev/cpu_dma_latency needs root)"
    return held, f"CPU wake-up latency held at {microseconds} us"


def cpu_model() -> str:
    """The CPU's name as the kernel reports it, and the cores this process may use."""
    name = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        import platform

        name = platform.processor() or name
    from stemforge.core.processor import usable_cpus

    return f"{name}, {usable_cpus()} core(s) usable"


def model_call(name: str, repeats: int = 300) -> dict:
    """Seconds per hop of the model's forward: one hop per call (median, p99), 16 hops in one
    call (median per hop), and one hop per call after freeze + optimize_for_inference."""
    import torch

    import stemforge

    model = stemforge.load_model(name)
    module, hop = model._module, model.info.hop
    x = torch.from_numpy(music(max(repeats, 16) * hop / model.sample_rate + 1, model.sample_rate, seed=2)[None])

    def per_hop(m) -> np.ndarray:
        state, times = m.initial_state(1), []
        with torch.inference_mode():
            for k in range(repeats):
                t0 = time.perf_counter()
                _, state = m(x[:, :, k * hop : (k + 1) * hop], state)
                times.append(time.perf_counter() - t0)
        return np.array(times[20:])

    one = per_hop(module)
    batched = []
    with torch.inference_mode():
        for _ in range(30):
            state = module.initial_state(1)
            t0 = time.perf_counter()
            module(x[:, :, : 16 * hop], state)
            batched.append((time.perf_counter() - t0) / 16)
    frozen = torch.jit.optimize_for_inference(
        torch.jit.freeze(module, preserved_attrs=["initial_state"]), other_methods=["initial_state"]
    )
    optimised = per_hop(frozen)
    return dict(
        one=float(np.median(one)),
        one_p99=float(np.percentile(one, 99)),
        batched=float(np.median(batched)),
        frozen=float(np.median(optimised)),
        hop=hop,
        rate=model.sample_rate,
    )


def rt_bench() -> Path:
    """The real-time host (plugin/vst3/tests/rt_host.cpp), whose --bench mode is rt_bench.cpp,
    built optimised in the plugin's CMake tree (the tests build theirs at -O0)."""
    import subprocess

    cmake_dir = ROOT / "build" / "vst3" / "cmake"
    if not (cmake_dir / "CMakeCache.txt").is_file():
        raise SystemExit("the plugin's CMake tree is not here: python build.py plugin")
    subprocess.run(
        ["cmake", "--build", str(cmake_dir), "--target", "stemforge_rt_bench", "-j", "2"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return cmake_dir / "stemforge_rt_bench_artefacts" / "Release" / "stemforge_rt_bench"


@dataclass
class RealTimeRow:
    """One face played in real time: per block the audio thread's seconds (`times`), how late
    it started (`late`) and whether the device had run dry (`dry`); the hops missed, in all and (where the face says when) per block."""

    times: np.ndarray
    late: np.ndarray
    dry: np.ndarray  # per block: the device had run dry before it (see paced)
    missed: int
    latency: int
    missed_per_block: Optional[np.ndarray] = None
    worker_calls: Optional[np.ndarray] = None  # the Python engine's model calls, timed around its step
    worker: Optional[dict] = None  # the native engine's own account (native.WorkerTimes)
    rescued: Optional[int] = None  # with a spare worker: hops it delivered (the first was late)


def vst3_real_time(
    exe: Path,
    name: str,
    x: np.ndarray,
    rate: int,
    block: int,
    priority: bool,
    warm: float = 2.0,
    periods: int = DEVICE_PERIODS,
    spare: bool = False,
) -> RealTimeRow:
    """The plugin in real-time mode, paced at the device's rate by rt_bench.cpp (the plugin says
    its misses for the whole stream only); `name` is MODEL/N (a margin of N hops), and with
    `spare` the plugin's spare worker is on."""
    import os
    import re
    import subprocess
    import tempfile

    import stemforge

    with tempfile.TemporaryDirectory() as tmp:
        audio, times = Path(tmp) / "in.f32", Path(tmp) / "times.f64"
        np.ascontiguousarray(x, np.float32).tofile(audio)
        run = subprocess.run(
            [
                str(exe),
                "--bench",
                str(stemforge.plugin_path()),
                name + ("+spare" if spare else "-spare"),
                str(rate),
                str(block),
                str(audio),
                str(times),
                "1",
                "1" if priority else "0",
                str(warm),
                str(periods),
            ],
            capture_output=True,
            text=True,
            env=dict(os.environ, STEMFORGE_VERBOSE="1"),
        )
        if run.returncode != 0:
            raise SystemExit(f"rt_bench failed: {run.stderr}")
        missed = [ln for ln in run.stderr.splitlines() if "missed in this stream" in ln]
        said = [ln for ln in run.stderr.splitlines() if "the worker in this stream" in ln]
        lines = dict(ln.split(" ", 1) for ln in run.stdout.splitlines() if " " in ln)
        per_block = np.fromfile(times).reshape(-1, 4)
        counts = [int(v) for v in re.findall(r"\d+", missed[-1])]  # missed, then from the spare
        return RealTimeRow(
            times=per_block[:, 0],
            late=per_block[:, 1],
            dry=per_block[:, 2] > 0,
            missed=counts[0],
            rescued=counts[1] if spare else None,
            latency=int(lines["latency"]),
            worker=worker_account(said[-1]) if said else None,
        )


def worker_account(line: str) -> dict:
    """The plugin's line "stemforge: the worker in this stream: ..." (STEMFORGE_VERBOSE, on
    releasing its resources) as native.WorkerTimes' fields, in seconds."""
    import re

    numbers = [float(v) for v in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?", line.split("stream:", 1)[1])]
    from stemforge.core.native import WorkerTimes

    names = [name for name, _ in WorkerTimes._fields_]  # the line gives them in the struct's order
    return {k: (v if k in WorkerTimes.COUNTS else v / 1e3) for k, v in zip(names, numbers)}


def python_real_time(
    name: str,
    x: np.ndarray,
    rate: int,
    block: int,
    headroom: Optional[int],
    engine: str = "python",
    periods: int = DEVICE_PERIODS,
    spare: bool = False,
) -> RealTimeRow:  # "python" unless asked: StemSeparator's default is native where it is built
    """StemSeparator(realtime=True, engine=engine) paced at the device's rate, its misses read
    after each block; with the Python engine, the model's time per call in the worker thread
    measured apart (the native engine's worker is the plugin's, timed by nothing here)."""
    import stemforge

    model = stemforge.load_model(name)
    step, calls = model.step, []

    def timed_step(chunk, state):  # runs in the worker thread
        t0 = time.perf_counter()
        out = step(chunk, state)
        calls.append(time.perf_counter() - t0)
        return out

    model.step = timed_step
    sep = stemforge.StemSeparator(
        model, stem="vocals", threads=1, realtime=True, headroom=headroom, engine=engine, spare_worker=spare
    )
    sep.prepare(rate, 2, block_size=block)
    silence = np.zeros((2, int(2.0 * rate)), np.float32)  # the first calls settle, untimed
    paced(lambda c: sep.process_block(c, rate), silence, block, rate)
    sep.reset()
    calls.clear()
    times, late, seen, dry = paced(
        lambda c: sep.process_block(c, rate), x, block, rate, observe=lambda: sep.misses, periods=periods
    )
    return RealTimeRow(
        times=times,
        late=late,
        dry=dry,
        worker=sep.worker_times(),
        missed=sep.misses,
        rescued=sep.rescued if spare else None,
        latency=sep.latency_samples,
        missed_per_block=np.diff(seen, prepend=0.0),
        worker_calls=np.array(calls),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--models", default="live")
    parser.add_argument("--blocks", default="128,256")
    parser.add_argument("--rates", default="44100,48000", help="host rates of the per-block rows")
    parser.add_argument("--design", action="store_true", help="the measurement behind the C++ port")
    parser.add_argument(
        "--realtime-priority",
        action="store_true",
        help="the audio threads at SCHED_FIFO priority, as a DAW runs its audio thread",
    )
    parser.add_argument(
        "--headroom",
        default=None,
        help="model samples the worker has per hop, or several (64,128: a row each; the latency against "
        "the misses); default: one hop. The plugin's rows only where it is 1 or 2 hops (its margin)",
    )
    parser.add_argument(
        "--device-periods",
        type=int,
        default=DEVICE_PERIODS,
        help="blocks the device's buffer holds: a block that starts later than that less one has found "
        "it run dry, and the stream starts again (0: it never runs dry, every block owed is played "
        "back to back)",
    )
    parser.add_argument(
        "--cpu-wakeup-latency",
        type=int,
        default=None,
        metavar="US",
        help="hold every CPU's wake-up latency at US microseconds for the run (/dev/cpu_dma_latency, "
        "root): idle CPUs poll instead of halting, which on a VM keeps the hypervisor from parking them",
    )
    parser.add_argument("--skip", default="", help="vst3, python or native: leave those rows out")
    parser.add_argument(
        "--spare-worker",
        choices=("off", "on", "both"),
        default="on",
        help="the plugin's and the native engine's rows with a spare worker that runs every hop too (on, "
        "their default on 2 CPUs or more), without (off), or a row of each (both); the missed-hops cell of "
        "a row with it says how many hops came from it",
    )
    args = parser.parse_args()
    headrooms = [None] if args.headroom is None else [int(h) for h in args.headroom.split(",")]
    if args.design:
        return design()
    import torch

    from stemforge.apps.live import raise_priority

    torch.set_num_threads(1)
    priority = raise_priority() if args.realtime_priority else "normal priority"
    if args.cpu_wakeup_latency is not None:
        held, wakeup = hold_wakeup_latency(args.cpu_wakeup_latency)  # held until the process ends
        priority += f"; {wakeup}"
    print(
        f"CPU: {cpu_model()}; one torch thread; {priority}; blocks paced at the device's rate, "
        f"{args.device_periods or 'unlimited'} blocks in its buffer; "
        f"{args.seconds:g} s per row; times in ms\n"
    )
    print("bare model call per hop (TorchScript forward, one thread):\n")
    print("| model | hop | one hop: median | one hop: p99 | 16 hops batched, per hop | one hop, frozen + optimised |")
    print("| --- | --- | --- | --- | --- | --- |")
    calls = {}
    for name in args.models.split(","):
        c = calls[name] = model_call(name)
        print(
            f"| {name} | {c['hop']} | {1e3 * c['one']:.3f} | {1e3 * c['one_p99']:.3f} | "
            f"{1e3 * c['batched']:.3f} | {1e3 * c['frozen']:.3f} |",
            flush=True,
        )
    exe = rt_bench() if "vst3" not in args.skip else None
    print("\naudio thread per block (the model runs in a worker thread):\n")
    print(
        "| what | rate | block (lasts) | latency (ms) | mean | p99 | max | late | missed hops | "
        f"started > {1e3 * STALL:g} ms late: blocks, max; device ran dry; CPU ms stolen by the hypervisor | "
        "late, missed away from those | "
        "p99 / one-hop call, away from those | worker's model call: mean, p99 | "
        "worker's runs: late; waited p99, max; ran p99, max |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for rate, block in ((int(r), int(b)) for r in args.rates.split(",") for b in args.blocks.split(",")):
        x = music(args.seconds, rate, seed=1)
        budget = block / rate
        for name in args.models.split(","):
            faces = []  # (label, a function that plays the row)
            spares = {"off": [False], "on": [True], "both": [False, True]}[args.spare_worker]
            for headroom in headrooms:
                also = "" if headroom is None else f", headroom {headroom}"
                margin = plugin_margin(headroom, calls[name]["hop"])
                for spare in spares if exe is not None and margin is not None else []:
                    faces.append(
                        (
                            f"VST3{also}{'' if spare else ', one worker'}",
                            partial(
                                vst3_real_time,
                                exe,
                                f"{name}/{margin}",
                                x,
                                rate,
                                block,
                                args.realtime_priority,
                                periods=args.device_periods,
                                spare=spare,
                            ),
                        )
                    )
                if "python" not in args.skip:
                    faces.append(
                        (
                            f"Python{also}",
                            partial(python_real_time, name, x, rate, block, headroom, periods=args.device_periods),
                        )
                    )
                for spare in spares if "native" not in args.skip else []:
                    faces.append(
                        (
                            f"Python, native{also}{'' if spare else ', one worker'}",
                            partial(
                                python_real_time,
                                name,
                                x,
                                rate,
                                block,
                                headroom,
                                engine="native",
                                periods=args.device_periods,
                                spare=spare,
                            ),
                        )
                    )
            for what, play in faces:
                before = stolen_seconds()
                row = play()
                after = stolen_seconds()
                stolen = None if before is None or after is None else after - before
                print(
                    f"| {name}: {what} | {rate} | {block} ({1e3 * budget:.2f}) | "
                    f"{row_cells(row, budget, rate, block, calls[name]['one'], stolen)} |",
                    flush=True,
                )


def plugin_margin(headroom: Optional[int], hop: int) -> Optional[int]:
    """The plugin's margin (hops of headroom, 1 or 2) for a headroom in model samples; None where
    the plugin offers none (its margin is whole hops)."""
    if headroom is None:
        return 1
    hops, rest = divmod(headroom, hop)
    return hops if rest == 0 and hops in (1, 2) else None


def stolen_seconds() -> Optional[float]:
    """CPU time the hypervisor has taken from this VM's virtual CPUs since boot, summed over them
    (/proc/stat's steal, in the kernel's ticks); None where the kernel does not count it."""
    import os

    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def row_cells(
    row: RealTimeRow, budget: float, rate: int, block: int, one_hop: float, stolen: Optional[float] = None
) -> str:
    """A real-time row's cells after its block: latency, the audio thread's times, what was late
    or missed, how much of it followed a block the machine started late, and the CPU time the
    hypervisor took meanwhile (`stolen`, seconds)."""
    t, p99 = row.times, np.percentile(row.times, 99)
    stalled = row.late > STALL
    near = after_stall(row.late, block, rate)
    late_away = int(np.sum((t > budget) & ~near))
    if row.missed_per_block is not None:
        missed_away = str(int(np.sum(row.missed_per_block[~near])))
    else:  # the plugin gives one count for the stream: all of it is away from a stall if none was
        missed_away = str(row.missed) if not stalled.any() else "not told apart"
    worker, runs = "", ""
    if row.worker_calls is not None and len(row.worker_calls):
        worker = f"{1e3 * row.worker_calls.mean():.3f}, {1e3 * np.percentile(row.worker_calls, 99):.3f}"
    if row.worker is not None:  # the native engine's account: model calls, and the runs around them
        from stemforge.core.native import WorkerTimes

        w = {k: (v if k in WorkerTimes.COUNTS else 1e3 * v) for k, v in row.worker.items()}
        worker = f"{w['call_mean']:.3f}, {w['call_p99']:.3f} (max {w['call_max']:.3f})"
        runs = (
            f"{int(w['late_runs'])} of {int(w['runs'])}; {w['wait_p99']:.3f}, {w['wait_max']:.3f}; "
            f"{w['run_p99']:.3f}, {w['run_max']:.3f}"
        )
        if w["late_runs"]:  # what the system saw of them: its scheduler's delay, page faults
            delay = "not known" if w["late_sched_delay"] < 0 else f"{w['late_sched_delay']:.1f}"
            runs += f" (late: {w['late_span']:.1f} ms, the OS's delay {delay}, {int(w['late_faults'])} faults)"
    rescued = "" if row.rescued is None else f" ({row.rescued} from the spare)"
    return (
        f"{row.latency} ({1e3 * row.latency / rate:.1f}) | {1e3 * t.mean():.3f} | {1e3 * p99:.3f} | "
        f"{1e3 * t.max():.3f} | {int(np.sum(t > budget))} | {row.missed}{rescued} | "
        f"{int(stalled.sum())}, {1e3 * row.late.max():.2f}; {int(row.dry.sum())}; "
        f"{'not counted' if stolen is None else f'{1e3 * stolen:.0f}'} | {late_away}, {missed_away} | "
        f"{100 * p99 / one_hop:.0f} %, {100 * np.percentile(t[~near], 99) / one_hop if (~near).any() else np.nan:.0f} % | "
        f"{worker} | {runs}"
    )


if __name__ == "__main__":
    main()
