"""The host-rate data path of one stream:

    host input -> resampler -> block engine (model) -> output mix -> resampler -> outputs

Each output is a linear combination of the stems, ``mix @ stems``, plus
``direct`` times the input itself, delayed to line up with the stems. That
one mechanism gives a single stem (an acapella), a weighted sum (karaoke or
a rebalance), and a residual stem that makes the outputs add up to the input
exactly, whatever the resamplers did to the top octave.

`push` returns the outputs that are complete, aligned with the input;
`flush` returns the rest, so that exactly as many samples come out as went in.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Optional, Tuple

import numpy as np

from .contract import ModelInfo
from .engine import ENGINES, make_engine
from .fifo import SampleFifo
from .loading import Model
from .policy import OFFLINE, REALTIME
from .realtime import DecoupledEngine
from .resample import StreamResampler, check_resampling, recipes

# Silence pushed at the end of a stream, in seconds: the output resampler's filter
# reaches this far past a sample, and must find there what a continuing stream
# would give it (the stems' tail), not soxr's zero padding.
FLUSH_PAD_SECONDS = 0.02


class Pipeline:
    """resampling: a `resample.RESAMPLING` name, OFFLINE by default (a Pipeline of its own
    runs whole inputs, as StemSplitter's does); StemSeparator passes its own (`policy`).

    headroom: None, or real time without the model on the caller's thread: the model
    runs in a worker thread and each hop's stems are due `headroom` model samples after
    the hop is complete (see `realtime.DecoupledEngine`; `fallback` names the stem that
    takes a missed hop's input)."""

    def __init__(
        self,
        model: Model,
        host_rate: int,
        host_channels: int,
        mix: np.ndarray,
        direct: np.ndarray,
        threads: Optional[int] = None,
        resampling: str = OFFLINE,
        headroom: Optional[int] = None,
        fallback: int = 0,
        max_block: int = 0,
    ):
        self.model, self.host_rate, self.host_channels = model, host_rate, host_channels
        self.resampling = check_resampling(resampling)  # a RESAMPLING name, for every mode
        self.mix = np.ascontiguousarray(mix, np.float32)  # (outputs, stems)
        self.direct = np.asarray(direct, np.float32)  # (outputs,)
        self.outputs = self.mix.shape[0]
        c, ch = model.channels, host_channels
        self._batch = ch if c == 1 else 1  # a mono model runs each host channel as a batch item
        self.engine = make_engine(model, self._batch, threads)
        self.headroom = headroom
        self.decoupled = None if headroom is None else DecoupledEngine(self.engine, headroom, fallback, max_block)
        self._active = self.engine  # the decoupled engine in real time, if there is one
        q_in, q_out = resampler_recipes(host_rate, model.sample_rate, self.resampling)
        self._resample_in = StreamResampler(host_rate, model.sample_rate, ch, q_in)
        self._resample_out = StreamResampler(model.sample_rate, host_rate, self.outputs * ch, q_out)
        self._uses_direct = bool(np.any(self.direct))
        self._nothing = np.zeros((self.outputs, host_channels, 0), np.float32)
        # The latency bound simulates both resamplers sample by sample (~60 ms at 48 kHz,
        # cached per rate pair): pay it here, when preparing, not in the first real-time block.
        self.latency  # noqa: B018 (the property computes and caches)
        self.reset()

    @property
    def needs_track_stats(self) -> bool:
        """Whether the model normalises its input by the whole track's statistics (Demucs)."""
        return self.model.info.input_normalization == "track"

    def set_track_stats(self, stats: Optional[Tuple[float, float]]) -> None:
        """For models that need them: the (mean, std) of the whole input when it is
        known, or None for the streaming estimate. Other models ignore it."""
        if self.needs_track_stats:
            self.engine.set_track_stats(stats)

    def set_realtime(self, realtime: bool) -> None:
        """Real time: run the model as soon as it can (process_block); otherwise batch
        model calls for throughput (streamed files). The samples are the same.
        With a headroom, real time runs the model in the decoupled engine's worker."""
        if self.decoupled is not None:
            if realtime:
                self.decoupled.start()
            else:
                self.decoupled.stop()
        self.engine.set_realtime(realtime)
        self._active = self.decoupled if realtime and self.decoupled is not None else self.engine

    @property
    def misses(self) -> int:
        """Hops delivered without the model's stems since the stream started (real time
        with a headroom only)."""
        return 0 if self.decoupled is None else self.decoupled.misses

    def reset(self) -> None:
        if self.decoupled is not None:
            self.decoupled.reset()  # stops its worker first: then the engine is ours
        self.engine.reset()
        self._resample_in.reset()
        self._resample_out.reset()
        self._input = SampleFifo((self.host_channels,))  # input not yet matched by output
        self._received = 0
        self._emitted = 0

    # -- channel mapping between the host and the model ---------------------------------
    def _to_model(self, x: np.ndarray) -> np.ndarray:
        c, ch = self.model.channels, self.host_channels
        if c == ch:
            return x[None]
        if c == 1:
            return x[:, None, :]
        return np.repeat(x[None], 2, axis=1)  # mono host, stereo model

    def _mix_to_host(self, stems: np.ndarray) -> np.ndarray:
        """(batch, stems, model channels, n) -> (outputs * host channels, n)."""
        # A weighted sum per output, not np.tensordot: a 4 x 4 by (4, n) product goes to
        # OpenBLAS, whose threads then spin on the other core after every call (measured:
        # `stemforge separate` on 60 s used 3.3 s of CPU instead of 2.0; bench/cluster.py: a local
        # export ran at half the speed of one with OMP_NUM_THREADS=1, now at the same).
        y = np.zeros((self.outputs,) + stems.shape[:1] + stems.shape[2:], np.float32)
        for o, weights in enumerate(self.mix):
            for s, w in enumerate(weights):
                if w != 0:
                    y[o] += w * stems[:, s]  # (outputs, batch, channels, n)
        c, ch = self.model.channels, self.host_channels
        if c == ch:
            y = y[:, 0]
        elif c == 1:
            y = y[:, :, 0]
        else:
            y = y[:, 0].mean(axis=1, keepdims=True)  # stereo model, mono host
        return y.reshape(self.outputs * ch, -1)

    def _finish(self, y: np.ndarray, count: Optional[int] = None) -> np.ndarray:
        """Shape the resampled outputs and add the delayed input where asked."""
        n = y.shape[1] if count is None else count
        if y.shape[1] < n:  # cannot happen with the flush padding; keep the length contract anyway
            y = np.pad(y, ((0, 0), (0, n - y.shape[1])))
        y = y[:, :n].reshape(self.outputs, self.host_channels, n)
        if self._uses_direct:
            y = y + self.direct[:, None, None] * self._input.pop(n)[None]
        self._emitted += n
        return y

    def push(self, x: np.ndarray) -> np.ndarray:
        """(host channels, n) float32 -> (outputs, host channels, m) completed samples."""
        self._received += x.shape[1]
        if self._uses_direct:  # the input waits here for the stems it is added to
            self._input.append(x)
        stems = self._active.push(self._to_model(self._resample_in.push(x)))
        if stems.shape[3] == 0 and self._resample_out.identity:
            return self._nothing
        return self._finish(self._resample_out.push(self._mix_to_host(stems)))

    def flush(self) -> np.ndarray:
        missing = self._received - self._emitted
        pad_samples = 0 if self._resample_in.identity else int(FLUSH_PAD_SECONDS * self.host_rate)
        pad = np.zeros((self.host_channels, pad_samples), np.float32)
        tail = np.concatenate([self._resample_in.push(pad), self._resample_in.flush()], axis=1)
        stems = [self.engine.push(self._to_model(tail)), self.engine.flush()]
        mixed = self._mix_to_host(np.concatenate(stems, axis=3))
        y = np.concatenate([self._resample_out.push(mixed), self._resample_out.flush()], axis=1)
        out = self._finish(y, missing)
        self.reset()
        return out

    @property
    def latency(self) -> int:
        """Host samples by which output can lag input: the delay `process_block` reports.

        Every stage's output count depends only on how much went into it, and grows
        with it. If the input resampler is at most h_in model samples behind n * r,
        the engine at most h_eng behind its input, and the output resampler at most
        h_out host samples behind its input / r, the whole path is at most
        (h_in + h_eng) / r + h_out behind: a bound that holds for any blocking.
        """
        delay = self.engine.realtime_delay + (self.headroom or 0)
        return host_latency(delay, self.host_rate, self.model.sample_rate, self.resampling)


def host_latency(engine_delay: int, host_rate: int, model_rate: int, resampling: str) -> int:
    """`Pipeline.latency` for an engine whose real-time delay is `engine_delay` model samples,
    under the caller's `resampling` policy (no default: see `policy`)."""
    if host_rate == model_rate:
        return engine_delay
    h_in, h_out = resampler_holdbacks(host_rate, model_rate, check_resampling(resampling))
    return int(np.ceil((h_in + engine_delay) * host_rate / model_rate + h_out))


def latency_of(info: ModelInfo, host_rate: int, resampling: str = REALTIME, headroom: Optional[int] = None) -> int:
    """The latency_samples a processor (by default StemSeparator's, the REALTIME policy)
    reports for a model at `host_rate`, from its metadata alone (without loading the model);
    `headroom`: real time with the model in a worker thread (`realtime_headroom`)."""
    delay = ENGINES[info.kind].delay_for(info) + (headroom or 0)
    return host_latency(delay, host_rate, info.sample_rate, resampling)


def realtime_headroom(
    info: ModelInfo,
    host_rate: int,
    block_size: Optional[int] = None,
    headroom: Optional[int] = None,
    resampling: str = REALTIME,
) -> int:
    """Model samples between a hop's completion and the moment its stems are due, in real
    time with the model in a worker thread: `headroom` (default: one hop, the time the model
    has per hop anyway), and at least the most model samples a host block of `block_size`
    can bring. A block's input arrives all at once, so a hop completed by a block's first
    samples would otherwise be due in that same block, before the worker could run it."""
    wanted = max(info.hop if headroom is None else int(headroom), 1)
    if not block_size:
        return wanted
    if host_rate == info.sample_rate:
        return max(wanted, int(block_size))
    h_in = resampler_holdbacks(host_rate, info.sample_rate, check_resampling(resampling))[0]
    return max(wanted, int(np.ceil(block_size * info.sample_rate / host_rate + h_in)) + 1)


@lru_cache(maxsize=64)
def resampler_holdbacks(host_rate: int, model_rate: int, resampling: str) -> tuple:
    """(input resampler's worst holdback in model samples, output's in host samples)."""
    q_in, q_out = resampler_recipes(host_rate, model_rate, resampling)
    return (
        StreamResampler(host_rate, model_rate, 1, q_in).worst_holdback(),
        StreamResampler(model_rate, host_rate, 1, q_out).worst_holdback(),
    )


@lru_cache(maxsize=64)
def resampler_recipes(host_rate: int, model_rate: int, resampling: str) -> tuple:
    """`resample.recipes`, cached: choosing one simulates a resampler's hold-back."""
    return recipes(resampling, host_rate, model_rate)
