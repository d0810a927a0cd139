"""Block engines: run a model over an unbounded stream at the model's sample rate.

An engine takes input blocks of any size, ``(batch, channels, n)`` float32,
and returns the stems that are complete, ``(batch, stems, channels, m)``,
aligned with the input (the model's own delay removed). Its output for a
stream never depends on how the stream was cut into blocks, and its memory
is bounded by the model's hop or window, not by the stream's length.

``flush()`` ends the stream as if silence followed it and returns the rest,
so that in total exactly as many samples come out as went in.

The engines hold numpy buffers and call the model through `stemforge.core.loading`;
they know nothing of hosts, layouts or sample rates.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from .contract import KINDS, ModelError, ModelInfo
from .fifo import SampleFifo
from .loading import Model, torch_threads
from .stats import RunningStats

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
        return self.delay_for(self.model.info)

    @staticmethod
    def delay_for(info: ModelInfo) -> int:
        """The most input samples that can wait for their output in real-time mode:
        a hop's worth of buffering plus the model's lookahead."""
        return info.lookahead + info.hop - 1

    def emitted_after(self, received: int) -> int:
        """How many samples real-time mode has returned once `received` have gone in
        (whatever the blocking): whole hops, less the lookahead."""
        return max(0, received // self.hop * self.hop - self.delay)

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
    """Runs a fixed-window model on chunks every `hop` samples and cross-fades their
    outputs, as Demucs's ``apply_model(split=True, shifts=0)`` does.

    Chunks start at 0, hop, 2*hop, ... while they start before the end of the
    stream; a chunk covers `window` samples, fewer at the end. Each output
    sample is the weighted mean of the chunks that cover it. What the model
    sees of a chunk depends on the model's `tail`:

    ``pad``     the chunk, zero-padded to `window`;
    ``center``  `padded_window` samples centred on the chunk, real neighbours
                where the stream has them, zeros past its ends (Demucs's
                ``TensorChunk.padded``; the model's output is centre-trimmed);
    ``trim``    the chunk as it is (the model takes any length up to `window`),
                and no chunk starts after one has reached the end.

    ``input_normalization == "track"`` (Demucs): the model sees
    ``(x - mean) / std`` of the mono mix and its stems are scaled back. With
    `set_track_stats` (the whole track known, offline) that is exactly
    Demucs's separation; streaming, each chunk uses the running statistics of
    everything up to the end of what it sees, so the result still does not
    depend on how the stream was cut into blocks.
    """

    def __init__(self, model: Model, batch: int, threads: Optional[int] = None):
        self.model, self.batch, self.threads = model, batch, threads
        info = model.info
        self.window, self.hop, self.tail = info.window, info.hop, info.tail
        self.padded, self.left = self._padding(info)
        self.keep = self.padded // 2 if info.tail == "center" else 0
        self.normalize = info.input_normalization == "track"
        self.shape = (batch, len(info.stems), info.channels)
        self._nothing = _empty(*self.shape)
        self.weights = crossfade_weights(self.window, info.transition_power)
        self._track_stats: Optional[Tuple[float, float]] = None
        self.reset()

    def reset(self) -> None:
        # _input holds the stream from position _input_start (zeros before 0);
        # _acc/_wsum hold what earlier chunks added from position _offset on.
        self._input = SampleFifo((self.batch, self.model.channels), 2 * self.padded)
        self._input.append(np.zeros((self.batch, self.model.channels, self.keep), np.float32))
        self._input_start = -self.keep
        self._offset = 0  # where the next chunk starts
        self._acc = _empty(*self.shape)
        self._wsum = np.zeros(0, np.float32)
        self._stats = RunningStats()
        self._stats_end = 0  # the stream samples _stats has seen
        self._received = 0
        self._covered = 0  # the end of the latest chunk (trim: none starts past the end)

    def set_track_stats(self, stats: Optional[Tuple[float, float]]) -> None:
        """Normalise every chunk with the whole track's (mean, std), kept across resets;
        None: the running estimate."""
        self._track_stats = None if stats is None else (float(stats[0]), float(stats[1]))

    def set_realtime(self, realtime: bool) -> None:
        """A window model runs once per hop in both modes."""

    @staticmethod
    def _padding(info: ModelInfo) -> Tuple[int, int]:
        """(samples the model sees per chunk, left context of a full chunk); a chunk cut
        short at the end may need up to padded // 2."""
        padded = info.padded_window if info.tail == "center" else info.window
        return padded, (padded - info.window) // 2

    @property
    def realtime_delay(self) -> int:
        return self.delay_for(self.model.info)

    @classmethod
    def delay_for(cls, info: ModelInfo) -> int:
        """A sample is final once the chunk that starts at or before it, last, has run;
        that chunk runs when its whole padded input is in."""
        padded, left = cls._padding(info)
        return padded - left - 1

    def emitted_after(self, received: int) -> int:
        """How many samples `push` has returned once `received` have gone in (whatever
        the blocking): a hop per chunk whose whole padded input is in."""
        first = self.padded - self.left  # the input the first chunk needs
        return 0 if received < first else ((received - first) // self.hop + 1) * self.hop

    def _samples(
        self, start: int, n: int, end: Optional[int], stats: Optional[Tuple[float, float]] = None
    ) -> np.ndarray:
        """Stream positions [start, start + n), normalised by `stats` if given; zeros
        before 0 and past `end` (padding added after normalising, as Demucs does)."""
        first = max(start, 0)
        last = min(start + n, self._received if end is None else end)
        x = np.zeros((self.batch, self.model.channels, n), np.float32)
        if last > first:
            at = first - self._input_start
            real = self._input.peek(at + last - first)[..., at:]
            if stats is not None:
                real = (real - np.float32(stats[0])) / np.float32(stats[1])
            x[..., first - start : last - start] = real
        return x

    def _run_chunk(self, end: Optional[int]) -> np.ndarray:
        """Run the chunk at _offset (`end`: the stream's length once known) and return
        the samples it completes."""
        o = self._offset
        length = self.window if end is None else min(self.window, end - o)
        if self.tail == "trim":
            left, seen = 0, length
        elif self.tail == "center":
            left, seen = (self.padded - length) // 2, self.padded
        else:
            left, seen = 0, self.window
        stats = self._track_stats
        if self.normalize and stats is None:
            stop = o - left + seen if end is None else min(o - left + seen, end)
            if stop > self._stats_end:
                self._stats.add(self._samples(self._stats_end, stop - self._stats_end, end))
                self._stats_end = stop
            stats = self._stats.get()
        x = self._samples(o - left, seen, end, stats if self.normalize else None)
        with torch_threads(self.threads):
            y = self.model.run_window(torch.from_numpy(x)).cpu().numpy()
        y = y[..., left : left + length]
        if self.normalize:
            y = y * np.float32(stats[1]) + np.float32(stats[0])
        acc = np.zeros(self.shape + (self.window,), np.float32)
        wsum = np.zeros(self.window, np.float32)
        acc[..., : self._acc.shape[3]] += self._acc
        wsum[: self._wsum.shape[0]] += self._wsum
        acc[..., :length] += self.weights[:length] * y
        wsum[:length] += self.weights[:length]
        self._covered = o + length
        step = self.hop if end is None else min(self.hop, end - o)
        return self._emit(acc, wsum, step)

    def _emit(self, acc: np.ndarray, wsum: np.ndarray, step: int) -> np.ndarray:
        """Return the first `step` accumulated samples (final) and move past them."""
        done = acc[..., :step] / wsum[:step]
        self._acc, self._wsum = acc[..., step:], wsum[step:]
        self._offset += step
        keep_from = self._offset - self.keep
        self._input.drop(keep_from - self._input_start)
        self._input_start = keep_from
        return done

    def push(self, x: np.ndarray) -> np.ndarray:
        self._received += x.shape[2]
        self._input.append(x)
        outs = []
        while self._received >= self._offset - self.left + self.padded:
            outs.append(self._run_chunk(None))
        if not outs:
            return self._nothing
        return np.concatenate(outs, axis=3)

    def flush(self) -> np.ndarray:
        end, outs = self._received, []
        while self._offset < end and not (self.tail == "trim" and self._covered >= end):
            outs.append(self._run_chunk(end))
        if self._offset < end:  # trim: the last chunk already reached the end
            outs.append(self._emit(self._acc, self._wsum, end - self._offset))
        y = np.concatenate(outs, axis=3) if outs else _empty(*self.shape)
        self.reset()
        return y


def check_engines(engines: Mapping[str, type], kinds: Sequence[str]) -> None:
    """Raise unless `engines` runs exactly the contract's `kinds`."""
    missing = [k for k in kinds if k not in engines]
    unknown = [k for k in engines if k not in kinds]
    if missing or unknown:
        raise RuntimeError(
            f"stemforge.core.engine: ENGINES must run exactly the kinds of "
            f"contract.json ({', '.join(kinds)}); no engine for {missing or 'none'}, "
            f"not in the contract: {unknown or 'none'}"
        )


# The one table from a model's kind (its metadata) to the engine that runs it. The contract
# (contract.json's "kind") says which kinds a model file may declare; a kind added there
# without an engine here stops the package at import rather than a model at load.
ENGINES = {"streaming": StreamingEngine, "window": WindowEngine}
check_engines(ENGINES, KINDS)


def make_engine(model: Model, batch: int, threads: Optional[int] = None):
    if model.kind not in ENGINES:
        raise ModelError(
            f"{model.path}: no engine runs models of kind {model.kind!r}; the known kinds are {', '.join(ENGINES)}"
        )
    return ENGINES[model.kind](model, batch, threads)
