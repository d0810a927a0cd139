"""Real time from an audio interface: read a buffer, separate it, play it.

The loop is paced by the device: ``read()`` blocks until the interface has
recorded one buffer, ``process_block`` separates it, and ``write()`` hands it to
the output, which keeps a short queue of buffers (``queue`` buffers of silence at
the start, the usual double or triple buffering of a DAW). An under-run is an
output buffer the device had to play before the loop delivered it: it plays
silence instead, and is counted. `stemforge live` runs its separator with
``realtime=True``: the model runs in a worker thread, the loop only moves
samples, and a hop whose stems were not ready in time is a miss (its input
plays in ``other``), counted beside the under-runs.

Two devices follow the same small protocol (``sample_rate``, ``channels``,
``buffer_size``, ``read()``, ``write(block)``, ``underruns``,
``dropped_input``, ``close()``):

- `AudioStreamDevice`: a real interface through ``pedalboard.io.AudioStream``;
- `SimulatedDevice`: a file or array played at real-time pace by a clock, for
  machines without audio hardware (CI) and for checking that a machine keeps
  up before a gig: ``stemforge live --simulate song.wav``.

>>> device = SimulatedDevice(mix, 44100, buffer_size=256)           # doctest: +SKIP
>>> stats = run_live(StemSeparator("live", stem="vocals"), device)    # doctest: +SKIP
>>> stats.underruns                                                  # doctest: +SKIP
0
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from queue import Empty, Queue
from typing import Callable, List, Optional

import numpy as np

DEFAULT_QUEUE = 3  # output buffers queued ahead of the device (triple buffering)


@dataclass
class LiveStats:
    """What a live run did; times in seconds."""

    sample_rate: float
    buffer_size: int
    latency_samples: int  # the separator's own, compensated by nothing: it is heard
    device_latency_samples: int  # the input buffer plus the output queue
    blocks: int = 0
    underruns: int = 0
    dropped_input: int = 0
    busy_seconds: float = 0.0  # processing time, summed over the blocks
    worst_seconds: float = 0.0  # the slowest block's processing time
    # Blocks whose processing took longer than the buffer lasts. The output queue may
    # absorb one (then no under-run), but in a DAW, whose queue is the buffer itself,
    # each would be a dropout: the figure that says whether a machine is safe.
    late_blocks: int = 0
    # Hops the model had not finished when they were due (realtime=True): delivered on
    # time with their input whole in `other`, so they sound like a short lapse of the
    # separation, not a dropout.
    misses: int = 0
    # With a spare worker (spare_worker=True): hops the first worker was late for and the spare
    # delivered in time, so they were not missed.
    rescued: int = 0

    def add(self, seconds: float) -> None:
        self.blocks += 1
        self.busy_seconds += seconds
        self.worst_seconds = max(self.worst_seconds, seconds)
        if seconds * self.sample_rate > self.buffer_size:
            self.late_blocks += 1

    @property
    def total_latency_ms(self) -> float:
        return 1000 * (self.latency_samples + self.device_latency_samples) / self.sample_rate

    @property
    def load(self) -> float:
        """The worst block's processing time as a share of the buffer's duration."""
        return self.worst_seconds * self.sample_rate / self.buffer_size

    def summary(self) -> str:
        mean = 1000 * self.busy_seconds / max(self.blocks, 1)
        return (
            f"{self.blocks} buffers of {self.buffer_size}: {self.underruns} under-run(s), "
            f"{self.late_blocks} late block(s) (processed in longer than a buffer lasts), "
            f"{self.misses} missed hop(s) (the model late: the input passed to other)"
            f"{f', {self.rescued} from the spare worker' if self.rescued else ''}, "
            f"{self.dropped_input} input sample(s) dropped; processing {mean:.2f} ms mean, "
            f"{1000 * self.worst_seconds:.2f} ms worst of "
            f"{1000 * self.buffer_size / self.sample_rate:.2f} ms per buffer"
        )


class SimulatedDevice:
    """A device clock without hardware: buffer k of `audio` (channels, n) can be read at
    t0 + (k + 1) * B / sr, and the output plays buffer k at t0 + (k + 1 + queue) * B / sr;
    a buffer written later than that is an under-run. ``output`` is what was played.
    `clock` and `sleep` are the wall clock's unless given: the tests give a simulated one."""

    def __init__(
        self,
        audio: np.ndarray,
        sample_rate: float,
        buffer_size: int = 256,
        queue: int = DEFAULT_QUEUE,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "the simulated input",
    ):
        if audio.ndim != 2:
            raise ValueError("audio must be (channels, samples)")
        if audio.shape[0] not in (1, 2):
            raise ValueError(
                f"{name} has {audio.shape[0]} channels; stemforge live "
                "plays mono or stereo: mix the file down, or split it into mono or "
                "stereo files and simulate each"
            )
        bad = ~np.isfinite(audio.T)  # (samples, channels): the first hit is the earliest sample
        if bad.any():  # refused now, with its place in the file, not by the loop mid-run
            sample, channel = np.argwhere(bad)[0]
            raise ValueError(
                f"{name} holds NaN or Inf (first at sample {sample}, channel "
                f"{channel}); clean it first (stemforge separate refuses it too)"
            )
        self.audio = np.ascontiguousarray(audio, np.float32)
        self.sample_rate, self.buffer_size, self.queue = float(sample_rate), int(buffer_size), int(queue)
        self.channels = self.audio.shape[0]
        self.clock, self.sleep = clock, sleep
        self.underruns = self.dropped_input = 0
        self.played: List[np.ndarray] = []
        self.underrun_buffers: List[int] = []  # which of `played` are silence for an under-run
        self._read = self._written = 0
        self._start: Optional[float] = None

    @property
    def period(self) -> float:
        return self.buffer_size / self.sample_rate

    @property
    def finished(self) -> bool:
        return self._read * self.buffer_size >= self.audio.shape[1]

    def read(self) -> np.ndarray:
        if self._start is None:
            self._start = self.clock()
        ready = self._start + (self._read + 1) * self.period
        wait = ready - self.clock()
        if wait > 0:
            self.sleep(wait)
        k, b = self._read, self.buffer_size
        block = self.audio[:, k * b : (k + 1) * b]
        if block.shape[1] < b:  # the file ended: the interface goes on recording silence
            block = np.pad(block, ((0, 0), (0, b - block.shape[1])))
        self._read += 1
        return block

    def write(self, block: np.ndarray) -> None:
        due = self._start + (self._written + 1 + self.queue) * self.period
        if self.clock() > due:
            self.underruns += 1
            self.underrun_buffers.append(len(self.played))
            block = np.zeros_like(block)  # what the device played instead
        self.played.append(np.asarray(block, np.float32))
        self._written += 1

    @property
    def output(self) -> np.ndarray:
        return np.concatenate(self.played, axis=1) if self.played else np.zeros((self.channels, 0), np.float32)

    def close(self) -> None:
        pass


class AudioStreamDevice:
    """An audio interface through ``pedalboard.io.AudioStream``. ``AudioStream.write``
    blocks until its buffer has played, so a player thread feeds it from a queue of
    `queue` buffers; when that queue is empty the player plays silence: an under-run."""

    def __init__(
        self,
        input_device: Optional[str] = None,
        output_device: Optional[str] = None,
        sample_rate: float = 44100,
        buffer_size: int = 256,
        channels: int = 2,
        queue: int = DEFAULT_QUEUE,
    ):
        from pedalboard.io import AudioStream

        input_device = input_device or AudioStream.default_input_device_name
        output_device = output_device or AudioStream.default_output_device_name
        if not input_device or not output_device:
            raise OSError(
                f"no {'input' if not input_device else 'output'} audio device found; name one with --input/--output"
            )
        self.sample_rate, self.buffer_size, self.channels = float(sample_rate), int(buffer_size), channels
        self.queue = int(queue)
        self.underruns = 0
        self._stream = AudioStream(
            input_device,
            output_device,
            sample_rate=sample_rate,
            buffer_size=buffer_size,
            num_input_channels=channels,
            num_output_channels=channels,
        )
        self._stream.ignore_dropped_input = True  # counted, not raised
        self._dropped = 0
        self._out: "Queue[np.ndarray]" = Queue(maxsize=self.queue)
        for _ in range(self.queue):
            self._out.put(np.zeros((channels, buffer_size), np.float32))
        self._stop = threading.Event()
        self._player = threading.Thread(target=self._play, daemon=True)
        self._player.start()

    @property
    def dropped_input(self) -> int:
        return self._dropped

    def _play(self) -> None:
        silence = np.zeros((self.channels, self.buffer_size), np.float32)
        while not self._stop.is_set():
            try:
                block = self._out.get(timeout=self.buffer_size / self.sample_rate)
            except Empty:
                self.underruns += 1
                block = silence
            self._stream.write(block, self.sample_rate)

    def read(self) -> np.ndarray:
        block = self._stream.read(self.buffer_size)
        self._dropped += int(self._stream.dropped_input_frame_count)
        return block.reshape(self.channels, -1) if block.ndim == 1 else block

    def write(self, block: np.ndarray) -> None:
        self._out.put(np.ascontiguousarray(block, np.float32))

    def close(self) -> None:
        self._stop.set()
        self._player.join(timeout=1.0)
        self._stream.close()


def list_devices() -> str:
    """The input and output devices pedalboard's AudioStream sees, one per line."""
    from pedalboard.io import AudioStream

    inputs, outputs = AudioStream.input_device_names, AudioStream.output_device_names
    lines = ["inputs:"] + [f"  {name}" for name in inputs] + ["outputs:"] + [f"  {name}" for name in outputs]
    if not inputs and not outputs:
        lines.append(
            "(no audio devices found: on Linux, is the user in the 'audio' group and is ALSA/JACK/PulseAudio running?)"
        )
    return "\n".join(lines)


def raise_priority(priority: int = 50) -> str:
    """Run the calling thread at real-time priority (SCHED_FIFO), as JACK and DAWs run their
    audio threads, and say what happened. Measured on the 2-core build machines (docs/performance.md,
    "Per block: late blocks"): at normal priority the slowest blocks are the scheduler handing the
    core to other work for a time slice (4-5 ms), not stemforge's own cost; the garbage
    collector ran once in 20 s and never in a late block."""
    import os

    if not hasattr(os, "sched_setscheduler"):
        return "real-time priority: not available on this system; running at normal priority"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError:
        return (
            "real-time priority: not permitted; running at normal priority (on Linux, "
            "allow it with an rtprio limit for your user, e.g. the 'audio' group in "
            "/etc/security/limits.d/)"
        )
    return f"real-time priority: SCHED_FIFO {priority}"


def miss_advice(stats: LiveStats, separator) -> str:
    """What to do about a run's missed hops ("" without any): a machine that holds the model's
    worker back for longer than its headroom misses hops, and only a longer headroom, one hop
    more latency, keeps them whole (as the plugin's margin of 2 hops does)."""
    if not stats.misses:
        return ""
    info = separator.model.info
    more = (separator.headroom or info.hop) + info.hop
    spare = ""
    if getattr(separator, "engine", "") == "native" and not getattr(separator, "spare_worker", False):
        spare = " or, where it is one worker's CPU that stalls, keep a spare worker on (--spare-worker)"
    return (
        f"{stats.misses} hop(s) were missed: the model was later than its headroom allows (this machine "
        "held it back, or is too slow for it). "
        f"If that recurs here, give it a hop more with --headroom {more} "
        f"({1000 * info.hop / info.sample_rate:.1f} ms more latency){spare}."
    )


def run_live(
    separator,
    device,
    *,
    seconds: Optional[float] = None,
    stop: Optional[threading.Event] = None,
    report: Optional[Callable[[LiveStats], None]] = None,
) -> LiveStats:
    """Run `separator` (a StemSeparator) on `device` until `seconds` of audio have passed,
    `stop` is set, or a SimulatedDevice runs out of audio; `report` is called about once
    a second with the running figures."""
    if seconds is not None and not 0 < seconds < float("inf"):  # -1 ran no buffer at all
        raise ValueError(f"seconds must be above 0 (None: until stopped), got {seconds!r}")
    separator.prepare(device.sample_rate, device.channels, block_size=device.buffer_size)
    stats = LiveStats(
        device.sample_rate,
        device.buffer_size,
        separator.latency_samples,
        device.buffer_size * (1 + getattr(device, "queue", DEFAULT_QUEUE)),
    )
    limit = None if seconds is None else int(np.ceil(seconds * device.sample_rate / device.buffer_size))
    every = max(1, int(device.sample_rate / device.buffer_size))
    # processing is timed on the device's clock: a SimulatedDevice's may be simulated time
    clock = getattr(device, "clock", time.perf_counter)
    try:
        while not (stop is not None and stop.is_set()) and (limit is None or stats.blocks < limit):
            if getattr(device, "finished", False):
                break
            block = device.read()
            start = clock()
            out = separator.process_block(block, device.sample_rate)
            stats.add(clock() - start)
            device.write(out)
            stats.underruns, stats.dropped_input = device.underruns, device.dropped_input
            stats.misses = getattr(separator, "misses", 0)
            stats.rescued = getattr(separator, "rescued", 0)
            if report is not None and stats.blocks % every == 0:
                report(stats)
    finally:
        device.close()
    stats.underruns, stats.dropped_input = device.underruns, device.dropped_input
    stats.misses = getattr(separator, "misses", 0)
    stats.rescued = getattr(separator, "rescued", 0)
    return stats
