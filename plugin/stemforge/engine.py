"""Block engines: run a model over an unbounded stream at the model's sample rate.

An engine takes input blocks of any size, ``(batch, channels, n)`` float32,
and returns the stems that are complete, ``(batch, stems, channels, m)``,
aligned with the input (the model's own delay removed). Its output for a
stream never depends on how the stream was cut into blocks, and its memory
is bounded by the model's hop or window, not by the stream's length.

``flush()`` ends the stream as if silence followed it and returns the rest,
so that in total exactly as many samples come out as went in.

The engines hold numpy buffers and call the model through `stemforge.model`;
they know nothing of hosts, layouts or sample rates.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .fifo import SampleFifo
from .model import Model, torch_threads

MAX_STEP_SAMPLES = 1 << 16  # longest single model call: bounds memory on long inputs
# Throughput mode runs a streaming model on at least this many samples per call:
# one hop per call costs 3-8x more per hop than batched hops (each frame's matrix
# products re-read every weight), so only real-time calls should pay that.
THROUGHPUT_STEP_SAMPLES = 32768


def _empty(batch: int, stems: int, channels: int) -> np.ndarray:
    return np.zeros((batch, stems, channels, 0), np.float32)


class StreamingEngine:
    """Runs a streaming model a whole number of hops at a time, carrying its state.

    In real-time mode the model runs as soon as a hop is complete; in
    throughput mode it waits for THROUGHPUT_STEP_SAMPLES, holding output back
    longer but computing the same samples at close to the offline cost.
    """

    def __init__(self, model: Model, batch: int, threads: Optional[int] = None):
        self.model, self.batch, self.threads = model, batch, threads
        info = model.info
        self.hop, self.delay = info.hop, info.lookahead
        self.shape = (batch, len(info.stems), info.channels)
        self._nothing = _empty(*self.shape)
        self.max_step = max(self.hop, MAX_STEP_SAMPLES // self.hop * self.hop)
        self.min_step = self.hop
        self.reset()

    def set_realtime(self, realtime: bool) -> None:
        self.min_step = self.hop if realtime else -(-THROUGHPUT_STEP_SAMPLES // self.hop) * self.hop

    def reset(self) -> None:
        self._state = self.model.initial_state(self.batch)
        self._pending = SampleFifo((self.batch, self.model.channels), 2 * self.max_step)
        self._to_drop = self.delay  # the model's first outputs precede the stream
        self._received = 0
        self._emitted = 0

    @property
    def realtime_delay(self) -> int:
        """The most input samples that can wait for their output in real-time mode:
        a hop's worth of buffering plus the model's lookahead."""
        return self.delay + self.hop - 1

    def push(self, x: np.ndarray) -> np.ndarray:
        self._received += x.shape[2]
        self._pending.append(x)
        ready = len(self._pending) // self.hop * self.hop
        if ready < self.min_step:
            return self._nothing
        outs = []
        with torch_threads(self.threads):
            for start in range(0, ready, self.max_step):
                step = min(self.max_step, ready - start)
                chunk = torch.from_numpy(self._pending.pop(step))
                y, self._state = self.model.step(chunk, self._state)
                outs.append(y.cpu().numpy())
        y = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=3)
        if self._to_drop:
            dropped = min(self._to_drop, y.shape[3])
            y = y[..., dropped:]
            self._to_drop -= dropped
        self._emitted += y.shape[3]
        return y

    def flush(self) -> np.ndarray:
        missing, pending = self._received - self._emitted, len(self._pending)
        needed = self.delay + pending  # model output still to come
        silence = -(-needed // self.hop) * self.hop - pending
        received, min_step = self._received, self.min_step
        self.min_step = self.hop  # the end of the stream: run whatever is there
        y = self.push(np.zeros((self.batch, self.model.channels, max(silence, 0)), np.float32))
        self.min_step = min_step
        self._received = received
        y = y[..., :missing]
        self.reset()
        return y


def crossfade_weights(window: int, power: float) -> np.ndarray:
    """Triangular weights of overlapping windows, exactly as Demucs's apply_model builds them."""
    w = torch.cat([torch.arange(1, window // 2 + 1), torch.arange(window - window // 2, 0, -1)])
    return ((w / w.max()) ** power).numpy().astype(np.float32)


class WindowEngine:
    """Runs a fixed-window model on windows every `hop` samples, cross-fading their outputs.

    Windows start at 0, hop, 2*hop, ... and the last one starts before the end
    of the stream, zero-padded past it; each output sample is the weighted
    mean of every window that covers it.
    """

    def __init__(self, model: Model, batch: int, threads: Optional[int] = None):
        self.model, self.batch, self.threads = model, batch, threads
        info = model.info
        self.window, self.hop = info.window, info.hop
        self.shape = (batch, len(info.stems), info.channels)
        self._nothing = _empty(*self.shape)
        self.weights = crossfade_weights(self.window, info.transition_power)
        self.reset()

    def reset(self) -> None:
        # _input starts at the next window's offset; _acc/_wsum hold what earlier
        # windows added to the samples from that offset on.
        self._input = SampleFifo((self.batch, self.model.channels), 2 * self.window)
        self._acc = _empty(*self.shape)
        self._wsum = np.zeros(0, np.float32)
        self._received = 0
        self._emitted = 0

    def set_realtime(self, realtime: bool) -> None:
        """A window model runs once per hop in both modes."""

    @property
    def realtime_delay(self) -> int:
        """A sample is final once the last window covering it has run."""
        return self.window - 1

    def _run_window(self) -> np.ndarray:
        x = self._input.peek(self.window)
        if x.shape[2] < self.window:
            x = np.pad(x, ((0, 0), (0, 0), (0, self.window - x.shape[2])))
        with torch_threads(self.threads):
            y = self.model.run_window(torch.from_numpy(np.ascontiguousarray(x))).cpu().numpy()
        acc = np.zeros(self.shape + (self.window,), np.float32)
        wsum = np.zeros(self.window, np.float32)
        acc[..., :self._acc.shape[3]] += self._acc
        wsum[:self._wsum.shape[0]] += self._wsum
        acc += self.weights * y
        wsum += self.weights
        done = acc[..., :self.hop] / wsum[:self.hop]
        self._acc, self._wsum = acc[..., self.hop:], wsum[self.hop:]
        self._input.drop(self.hop)
        return done

    def push(self, x: np.ndarray) -> np.ndarray:
        self._received += x.shape[2]
        self._input.append(x)
        outs = []
        while len(self._input) >= self.window:
            outs.append(self._run_window())
        if not outs:
            return self._nothing
        y = np.concatenate(outs, axis=3)
        self._emitted += y.shape[3]
        return y

    def flush(self) -> np.ndarray:
        outs = []
        while self._emitted + sum(o.shape[3] for o in outs) < self._received:
            outs.append(self._run_window())
        y = np.concatenate(outs, axis=3) if outs else _empty(*self.shape)
        y = y[..., :self._received - self._emitted]
        self.reset()
        return y


def make_engine(model: Model, batch: int, threads: Optional[int] = None):
    engine = StreamingEngine if model.kind == "streaming" else WindowEngine
    return engine(model, batch, threads)
