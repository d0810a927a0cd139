"""Chain: pedalboard's native plugins and stemforge processors in series.

``pedalboard.Pedalboard`` only holds native plugins, so a StemSeparator cannot
go inside one; a Chain holds both, with the same call semantics, and every
stage's latency compensated: offline, the output is aligned with the input;
streaming (``reset=False`` then ``flush()``), the concatenated output equals
the offline output.

>>> from pedalboard import HighpassFilter, Compressor       # doctest: +SKIP
>>> chain = Chain([HighpassFilter(80), StemSeparator(stem="vocals"), Compressor()])  # doctest: +SKIP
>>> chain(audio, 44100).shape == audio.shape                 # doctest: +SKIP
True
"""

from __future__ import annotations

import re
from typing import Iterable, List, Optional, Tuple

import numpy as np

from .fifo import SampleFifo
from .layout import (
    CHANNELS_FIRST,
    MONO_1D,
    check_array,
    check_finite,
    check_layout,
    from_channels_first,
    to_channels_first,
)
from .resample import check_rate

MAX_FLUSH_ROUNDS = 64


def _check_stage(y: np.ndarray, k: int, plugin) -> None:
    """A stage that returns NaN or Inf (a parameter out of range: a negative cutoff, a
    1000 dB gain) would spread it through every later stage: name it where it happens."""
    if not np.isfinite(y).all():
        name = re.sub(r" at 0x[0-9a-f]+", "", repr(plugin)).strip("<>")
        raise ValueError(
            f"stage {k + 1} of the chain ({name}) returned NaN or Inf; check its "
            "parameters (a frequency or gain out of range?)"
        )


class _NativeStage:
    """A pedalboard plugin in a stream, fed so that its output does not depend on the chunking.

    A native plugin's output depends on the sizes of the calls it gets, not only on
    the samples: plugins with internal frames and latency (MP3Compressor) return
    their delayed samples in call-sized steps, and a plugin re-prepares, losing its
    state, when a call brings more samples than its first. So every call of a stream
    is exactly `block` samples (the stream's buffer_size, at least channels + 1 so that
    the first call's layout is unambiguous), which is how pedalboard itself runs an
    offline call; samples wait here until a block is full. Samples the plugin's latency
    holds back, and the last partial block, are flushed by feeding it silence.
    """

    def __init__(self, plugin):
        self.plugin = plugin
        self.reset()

    def reset(self) -> None:
        self.plugin.reset()
        self.received = self.returned = 0
        self.block: Optional[int] = None
        self.pending: Optional[SampleFifo] = None

    def _run(self, x: np.ndarray, sr: int) -> np.ndarray:
        y = self.plugin.process(x, sr, buffer_size=self.block, reset=False)
        self.returned += y.shape[1]
        return y

    def process(self, x: np.ndarray, sr: int, buffer_size: int, reset: bool) -> np.ndarray:
        self.received += x.shape[1]
        if reset:
            y = self.plugin.process(x, sr, buffer_size=buffer_size, reset=True)
            self.returned += y.shape[1]
            return y
        if self.block is None:
            self.block = max(buffer_size, x.shape[0] + 1)
            self.pending = SampleFifo((x.shape[0],), self.block)
        self.pending.append(x)
        outs = []
        while len(self.pending) >= self.block:
            outs.append(self._run(self.pending.pop(self.block), sr))
        return np.concatenate(outs, axis=1) if outs else x[:, :0]

    def flush(self, sr: int, channels: int) -> np.ndarray:
        outs = []
        if self.block is not None:
            rest = self.pending.pop(len(self.pending))
            if rest.shape[1]:
                outs.append(self._run(np.pad(rest, ((0, 0), (0, self.block - rest.shape[1]))), sr))
            silence = np.zeros((channels, self.block), np.float32)
            for _ in range(MAX_FLUSH_ROUNDS):
                if self.returned >= self.received:
                    break
                outs.append(self._run(silence, sr))
            else:
                raise RuntimeError(f"{self.plugin!r} did not return its delayed samples")
        y = np.concatenate(outs, axis=1) if outs else np.zeros((channels, 0), np.float32)
        y = y[:, : y.shape[1] - max(0, self.returned - self.received)]
        self.reset()
        return y


class _StemforgeStage:
    def __init__(self, processor):
        self.plugin = processor
        self.started = False

    def reset(self) -> None:
        self.plugin.reset()
        self.started = False

    def process(self, x: np.ndarray, sr: int, buffer_size: int, reset: bool) -> np.ndarray:
        if x.shape[1] == 0:
            return x
        if reset or not self.started:
            # The chain hands over (channels, samples): say so, or a (1, 1) or (2, 2) first
            # chunk would be ambiguous to the processor.
            self.plugin.prepare(sr, x.shape[0])
            self.started = not reset
        return self.plugin.process(x, sr, buffer_size=buffer_size, reset=reset)

    def flush(self, sr: int, channels: int) -> np.ndarray:
        y = self.plugin.flush()
        self.started = False
        return y if y.ndim == 2 else np.zeros((channels, 0), np.float32)


class Chain:
    """Process audio through `plugins` in order; same calls as a pedalboard plugin."""

    is_effect = True
    is_instrument = False

    def __init__(self, plugins: Iterable = ()):
        self.plugins: List = list(plugins)
        for p in self.plugins:
            if not callable(getattr(p, "process", None)) or not hasattr(p, "reset"):
                raise TypeError(f"{p!r} is not a plugin: it needs process() and reset()")
        # Processors that flush themselves (stemforge's, or a nested Chain) end their
        # own streams; native pedalboard plugins are flushed by feeding silence.
        self._stages = [
            _StemforgeStage(p) if callable(getattr(p, "flush", None)) else _NativeStage(p) for p in self.plugins
        ]
        self._stream: Optional[Tuple[int, int]] = None  # (sample_rate, channels) in progress
        self._hint: Optional[Tuple[str, int]] = None
        self._prepared: Optional[Tuple[str, int]] = None  # the layout prepare() was given
        self._layout = CHANNELS_FIRST
        self._buffer_size = 8192

    def __repr__(self) -> str:
        return f"<stemforge.Chain {self.plugins!r}>"

    def __len__(self) -> int:
        return len(self.plugins)

    def prepare(self, sample_rate: float, channels: int = 2, layout: str = CHANNELS_FIRST) -> None:
        """Start a stream of `channels` channels laid out as `layout`: settles the layout
        of chunks too small to tell it by their shape (see StemSeparator.prepare)."""
        check_layout(layout)
        self._prepared = (layout, channels)
        self.reset()
        self._stream = (check_rate(sample_rate), channels)

    def reset(self) -> None:
        for stage in self._stages:
            stage.reset()
        self._stream, self._hint = None, self._prepared

    def process(
        self, input_array: np.ndarray, sample_rate: float, buffer_size: int = 8192, reset: bool = True
    ) -> np.ndarray:
        check_array(input_array)
        if input_array.size == 0:
            return np.zeros(input_array.shape, np.float32)
        if reset:
            self.reset()
        x, layout = to_channels_first(input_array, self._hint)
        check_finite(x)
        rate = check_rate(sample_rate)
        if self._stream is not None and self._stream != (rate, x.shape[0]):
            raise ValueError("the stream in progress has another sample rate or channel count; call reset() first")
        self._stream, self._layout, self._buffer_size = (rate, x.shape[0]), layout, buffer_size
        self._hint = (layout if layout != MONO_1D else CHANNELS_FIRST, x.shape[0])
        for k, stage in enumerate(self._stages):
            x = stage.process(x, rate, buffer_size, reset)
            _check_stage(x, k, stage.plugin)
        if reset:
            self.reset()
        return from_channels_first(x, layout)

    __call__ = process

    def flush(self) -> np.ndarray:
        """End the stream: push each stage's held-back samples through the stages after it."""
        if self._stream is None:
            return np.zeros((0,), np.float32)
        rate, channels = self._stream
        tail = np.zeros((channels, 0), np.float32)
        for k, stage in enumerate(self._stages):
            tail = np.concatenate(
                [stage.process(tail, rate, self._buffer_size, False), stage.flush(rate, channels)], axis=1
            )
            _check_stage(tail, k, stage.plugin)
        self.reset()
        return from_channels_first(tail, self._layout)
