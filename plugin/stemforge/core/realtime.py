"""Real time without the model on the audio thread: `DecoupledEngine`.

`StemSeparator(realtime=True).process_block` runs its block engine through this
wrapper. The caller's thread (a host's audio thread) only moves samples: each block
goes into a preallocated input ring, and the stems that are due come out of a
preallocated output ring. A worker thread takes whole hops from the input ring, runs
the model (the wrapped engine) and puts the stems in the output ring. The two rings
are single-producer, single-consumer: each index is written by one thread only, so
neither thread ever waits for the other.

The stems of a hop are due `headroom` model samples after the hop is complete, so
the worker has that long (and at least one block, see `StemSeparator.prepare`) to
compute them, and the engine's delay grows by `headroom`. What comes out when
depends on the sample counts alone, never on timing: the output is the wrapped
engine's, delayed by `headroom`, wherever the worker was in time. A hop whose stems
are not in the ring when due (a miss) is delivered anyway, on time: its input goes
whole to the `fallback` stem (`other`), so the stems still sum to the input, and it
is counted in `misses`. The worker then still runs that hop, so that the model's
state stays that of the whole stream and the next hops are exact again; only if it
falls a whole input ring behind does it drop what it has not reached and start
afresh after it.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from queue import Empty, SimpleQueue
from typing import Optional

import numpy as np

from .fifo import SampleFifo

INPUT_RING_SECONDS = 2.0  # how far the worker may fall behind before it starts afresh
_WORKERS: "weakref.WeakSet[_Worker]" = weakref.WeakSet()


@atexit.register
def _halt_workers() -> None:
    # A worker still inside a model call when the interpreter finalises aborts the process
    # (torch's C++ runtime is torn down under it): let each finish its call first.
    for worker in list(_WORKERS):
        worker.halt()


def _copy_to_ring(ring: np.ndarray, position: int, x: np.ndarray) -> None:
    """Put x at stream `position` of a ring along its last axis (x no longer than the ring)."""
    cap, n = ring.shape[-1], x.shape[-1]
    i = position % cap
    first = min(n, cap - i)
    ring[..., i : i + first] = x[..., :first]
    ring[..., : n - first] = x[..., first:]


def _copy_from_ring(ring: np.ndarray, position: int, out: np.ndarray) -> None:
    """Fill `out` with the ring's samples from stream `position` on."""
    cap, n = ring.shape[-1], out.shape[-1]
    i = position % cap
    first = min(n, cap - i)
    out[..., :first] = ring[..., i : i + first]
    out[..., first:] = ring[..., : n - first]


class _Worker:
    """The state the worker thread shares with the audio thread, and the thread itself.

    Written by the audio thread only: `written` (input samples in the ring, counted from
    the stream's start), `gap_end` (the end of input it could not put in a full ring),
    `consumed` (stems delivered). Written by the worker only: `taken` (input samples it
    has read), `produced` (stems it has written), `fresh` (where the stems it has written
    since it last started afresh begin: before it, nothing it wrote belongs to this
    stream), `error`. Python ints, whose reads and assignments are atomic.
    """

    def __init__(self, engine, inputs: np.ndarray, outputs: np.ndarray, unit: int):
        self.engine, self.inputs, self.outputs, self.unit = engine, inputs, outputs, unit
        self.written = self.gap_end = self.consumed = 0
        self.taken = self.produced = self.fresh = 0
        self.idle = threading.Event()  # set while the worker has nothing left to run
        self.idle.set()
        self.error: Optional[BaseException] = None
        self.stop = False
        self.wake: "SimpleQueue[None]" = SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="stemforge-model", daemon=True)
        self.thread.start()
        _WORKERS.add(self)

    def _loop(self) -> None:
        while True:
            self.wake.get()
            while True:  # one pass serves every wake-up so far
                try:
                    self.wake.get_nowait()
                except Empty:
                    break
            if self.stop:
                return
            self.idle.clear()
            try:
                self._run()
            except BaseException as e:  # reported by the audio thread, which knows the caller
                self.error = e
                self.idle.set()
                return
            self.idle.set()

    def _run(self) -> None:
        unit = self.unit
        while not self.stop:
            written = self.written  # read before gap_end: the audio thread sets gap_end first
            if self.gap_end > self.taken:
                # the ring overflowed: what the model has not reached is gone; start afresh
                # at the first whole hop after it (the schedule of due hops stays aligned)
                start = -(-self.gap_end // unit) * unit
                self.engine.reset()
                # fresh before produced: the audio thread reads them in the other order, so
                # it never takes the skipped stretch for stems
                self.fresh = start
                self.produced = self.taken = start
                continue
            n = (written - self.taken) // unit * unit
            if n <= 0:
                return
            x = np.empty(self.inputs.shape[:-1] + (n,), np.float32)
            _copy_from_ring(self.inputs, self.taken, x)
            self.taken += n
            y = self.engine.push(x)
            p, m = self.produced, y.shape[-1]
            skip = min(max(self.consumed - p, 0), m)  # stems already delivered without the model
            _copy_to_ring(self.outputs, p + skip, y[..., skip:])
            self.produced = p + m

    def halt(self) -> None:
        self.stop = True
        self.wake.put(None)
        if self.thread is not threading.current_thread():
            self.thread.join()


class DecoupledEngine:
    """A block engine run by a worker thread; the caller only moves samples.

    engine: a StreamingEngine or WindowEngine in real-time mode (it must have
        `emitted_after`); the worker owns it while running.
    headroom: model samples between a hop's completion and the moment its stems are
        due; the delay grows by that much.
    fallback: the stem that takes a missed hop's input whole.
    """

    def __init__(self, engine, headroom: int, fallback: int, max_block: int = 0):
        if headroom < 1:
            raise ValueError(f"headroom must be at least one sample, got {headroom}")
        self.engine, self.headroom, self.fallback = engine, int(headroom), int(fallback)
        self.shape = engine.shape  # (batch, stems, channels)
        self.unit = engine.hop
        batch, stems, channels = self.shape
        rate = engine.model.sample_rate
        self.max_step = max(int(INPUT_RING_SECONDS * rate) // 4, max_block, self.unit)
        cap_in = max(int(INPUT_RING_SECONDS * rate), 4 * self.max_step, 4 * (self.unit + self.headroom))
        span = self.headroom + engine.realtime_delay + 2 * self.unit + self.max_step
        self._inputs = np.zeros((batch, channels, cap_in), np.float32)
        self._outputs = np.zeros((batch, stems, channels, cap_in + 2 * span), np.float32)
        self._nothing = np.zeros(self.shape + (0,), np.float32)
        self._worker: Optional[_Worker] = None
        self._adopted = False
        self.reset()

    @property
    def realtime_delay(self) -> int:
        return self.engine.realtime_delay + self.headroom

    def _halt(self) -> None:
        if self._worker is not None:
            self._worker.halt()
            self._worker = None

    def reset(self) -> None:
        """Stop the worker (after the model call it is in) and forget the stream; the next
        `start` or `push` starts a worker for a new one."""
        self._halt()
        self.engine.reset()
        self._written = 0
        self._emitted = 0
        self._history = SampleFifo(self.shape[:1] + self.shape[2:])  # input not yet delivered
        self.misses = 0

    def stop(self) -> None:
        """Stop the worker: the caller runs the wrapped engine itself until the next reset."""
        self._halt()

    def start(self) -> None:
        """Start the worker thread (StemSeparator.prepare does, so that the first block
        does not); a stream the worker left in the middle starts afresh."""
        if self._worker is None:
            if self._written:
                self.reset()
            self.engine.set_realtime(True)
            self._worker = _Worker(self.engine, self._inputs, self._outputs, self.unit)
            self._adopted = False

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """Wait until the worker has run every whole hop it was given: what a host that
        pauses, and a test that must not depend on the machine's speed, call between
        blocks. False if the worker failed or `timeout` seconds passed first."""
        w = self._worker
        deadline = None if timeout is None else time.monotonic() + timeout
        while w is not None and w.error is None:
            # taken moves only after idle is cleared: read it first
            if w.written - w.taken < self.unit and w.idle.is_set():
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.0002)
        return w is None

    def _adopt_priority(self) -> None:
        """The worker runs at the audio thread's real-time policy, one step below it
        (a DAW's audio thread, `stemforge live --realtime-priority`), so that other work
        on the machine cannot hold it back; nothing if the caller is not real time."""
        self._adopted = True
        if not hasattr(os, "sched_getscheduler"):
            return
        try:
            policy = os.sched_getscheduler(0)
            if policy in (os.SCHED_FIFO, os.SCHED_RR):
                priority = max(os.sched_getparam(0).sched_priority - 1, 1)
                os.sched_setscheduler(self._worker.thread.native_id, policy, os.sched_param(priority))
        except OSError:
            pass

    def push(self, x: np.ndarray) -> np.ndarray:
        """(batch, channels, n) in; the stems due by now, (batch, stems, channels, m), out."""
        if x.shape[-1] > self.max_step:  # the rings are sized for max_step per call
            return np.concatenate(
                [self.push(x[..., i : i + self.max_step]) for i in range(0, x.shape[-1], self.max_step)], axis=-1
            )
        self.start()
        w = self._worker
        if w.error is not None:
            error = w.error
            self.reset()  # the next block starts a new stream
            raise RuntimeError(
                f"{self.engine.model.name}: the model failed ({type(error).__name__}: {error})"
            ) from error
        if not self._adopted:
            self._adopt_priority()
        n, cap = x.shape[-1], self._inputs.shape[-1]
        start, end = self._written, self._written + n
        if end - w.taken > cap:  # the worker is a whole ring behind: this input is lost to it
            w.gap_end = end
        else:
            _copy_to_ring(self._inputs, start, x)
        self._written = w.written = end
        if end // self.unit != start // self.unit:
            w.wake.put(None)
        self._history.append(x)
        target = self.engine.emitted_after(end - self.headroom)
        count = target - self._emitted
        if count <= 0:
            return self._nothing
        y = np.empty(self.shape + (count,), np.float32)
        produced = w.produced  # read before fresh: the worker writes fresh first
        # the worker's stems for [emitted, target) are those in [fresh, produced): a stretch
        # it skipped when it started afresh comes before them, one it has not reached after
        lost = min(max(w.fresh - self._emitted, 0), count)
        ready = min(max(produced - self._emitted, lost), count)
        _copy_from_ring(self._outputs, self._emitted + lost, y[..., lost:ready])
        for a, b in ((0, lost), (ready, count)):  # a miss: the input goes whole to the fallback stem
            if a < b:
                y[..., a:b] = 0.0
                y[:, self.fallback, :, a:b] = self._history.peek(count)[..., a:b]
                self.misses += -(-(b - a) // self.unit)
        self._history.drop(count)
        self._emitted = w.consumed = target
        return y

    def flush(self) -> np.ndarray:
        raise RuntimeError("a real-time stream has no end to flush; reset() starts a new one")

    def __del__(self) -> None:
        w = getattr(self, "_worker", None)
        if w is not None:
            w.stop = True
            w.wake.put(None)
