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

from typing import Iterable, List, Optional, Tuple

import numpy as np

from .layout import CHANNELS_FIRST, MONO_1D, check_finite, from_channels_first, to_channels_first
from .resample import check_rate

MAX_FLUSH_ROUNDS = 64


class _NativeStage:
    """A pedalboard plugin in a stream, fed so that its output does not depend on the chunking.

    A native plugin re-prepares, losing its state, when a call brings more
    samples than its first call did; and it guesses the layout of a stream's
    first buffer ((2, 1) reads as two mono samples). So the stream's first call
    waits for `buffer_size` samples, and later calls are cut to that size.
    Samples its latency holds back are flushed by feeding it silence.
    """

    def __init__(self, plugin):
        self.plugin = plugin
        self.reset()

    def reset(self) -> None:
        self.plugin.reset()
        self.received = self.returned = 0
        self.block: Optional[int] = None  # the size of the stream's first call
        self.waiting: list = []  # the stream's first samples, until there are enough

    def _feed(self, x: np.ndarray, sr: int) -> list:
        outs = []
        for i in range(0, x.shape[1], self.block):
            outs.append(self.plugin.process(x[:, i:i + self.block], sr, buffer_size=self.block,
                                            reset=False))
            self.returned += outs[-1].shape[1]
        return outs

    def _start(self, x: np.ndarray, sr: int, size: int) -> list:
        self.block, self.waiting = size, []
        return self._feed(x, sr)

    def process(self, x: np.ndarray, sr: int, buffer_size: int, reset: bool) -> np.ndarray:
        self.received += x.shape[1]
        if reset:
            y = self.plugin.process(x, sr, buffer_size=buffer_size, reset=True)
            self.returned += y.shape[1]
            return y
        if self.block is None:
            self.waiting.append(x)
            first = max(buffer_size, x.shape[0] + 1)
            if self.received < first:
                return x[:, :0]
            outs = self._start(np.concatenate(self.waiting, axis=1), sr, first)
        else:
            outs = self._feed(x, sr)
        return np.concatenate(outs, axis=1) if outs else x[:, :0]

    def flush(self, sr: int, channels: int) -> np.ndarray:
        outs = []
        if self.block is None and self.waiting:  # the stream was shorter than one first call
            x = np.concatenate(self.waiting, axis=1)
            x = np.pad(x, ((0, 0), (0, max(0, channels + 1 - x.shape[1]))))  # unambiguous layout
            outs = self._start(x, sr, x.shape[1])
        for _ in range(MAX_FLUSH_ROUNDS):
            missing = self.received - self.returned
            if missing <= 0:
                break
            outs += self._feed(np.zeros((channels, missing), np.float32), sr)
        else:
            raise RuntimeError(f"{self.plugin!r} did not return its delayed samples")
        y = np.concatenate(outs, axis=1) if outs else np.zeros((channels, 0), np.float32)
        y = y[:, :y.shape[1] - max(0, self.returned - self.received)]
        self.reset()
        return y


class _StemforgeStage:
    def __init__(self, processor):
        self.plugin = processor

    def reset(self) -> None:
        self.plugin.reset()

    def process(self, x: np.ndarray, sr: int, buffer_size: int, reset: bool) -> np.ndarray:
        if x.shape[1] == 0:
            return x
        return self.plugin.process(x, sr, buffer_size=buffer_size, reset=reset)

    def flush(self, sr: int, channels: int) -> np.ndarray:
        y = self.plugin.flush()
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
        self._stages = [_StemforgeStage(p) if callable(getattr(p, "flush", None)) else _NativeStage(p)
                        for p in self.plugins]
        self._stream: Optional[Tuple[int, int]] = None  # (sample_rate, channels) in progress
        self._hint: Optional[Tuple[str, int]] = None
        self._layout = CHANNELS_FIRST
        self._buffer_size = 8192

    def __repr__(self) -> str:
        return f"<stemforge.Chain {self.plugins!r}>"

    def __len__(self) -> int:
        return len(self.plugins)

    def prepare(self, sample_rate: float, channels: int = 2) -> None:
        """Start a stream of `channels` channels: settles the layout of tiny first chunks."""
        self.reset()
        for p in self.plugins:
            if callable(getattr(p, "prepare", None)):
                p.prepare(sample_rate, channels)
        self._stream = (check_rate(sample_rate), channels)
        self._hint = (CHANNELS_FIRST, channels)

    def reset(self) -> None:
        for stage in self._stages:
            stage.reset()
        self._stream, self._hint = None, None

    def process(self, input_array: np.ndarray, sample_rate: float, buffer_size: int = 8192,
                reset: bool = True) -> np.ndarray:
        if input_array.size == 0 and input_array.dtype in (np.float32, np.float64):
            return np.zeros(input_array.shape, np.float32)
        if reset:
            self.reset()
        x, layout = to_channels_first(input_array, self._hint)
        check_finite(x)
        rate = check_rate(sample_rate)
        if self._stream is not None and self._stream != (rate, x.shape[0]):
            raise ValueError("the stream in progress has another sample rate or channel count; "
                             "call reset() first")
        self._stream, self._layout, self._buffer_size = (rate, x.shape[0]), layout, buffer_size
        self._hint = (layout if layout != MONO_1D else CHANNELS_FIRST, x.shape[0])
        for stage in self._stages:
            x = stage.process(x, rate, buffer_size, reset)
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
        for stage in self._stages:
            tail = np.concatenate([stage.process(tail, rate, self._buffer_size, False),
                                   stage.flush(rate, channels)], axis=1)
        self.reset()
        return from_channels_first(tail, self._layout)
