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
    """A pedalboard plugin, with the bookkeeping to flush the samples its latency holds back."""

    def __init__(self, plugin):
        self.plugin = plugin
        self.received = self.returned = 0

    def reset(self) -> None:
        self.plugin.reset()
        self.received = self.returned = 0

    def process(self, x: np.ndarray, sr: int, buffer_size: int, reset: bool) -> np.ndarray:
        y = self.plugin.process(x, sr, buffer_size=buffer_size, reset=reset)
        self.received, self.returned = self.received + x.shape[1], self.returned + y.shape[1]
        return y

    def flush(self, sr: int, channels: int) -> np.ndarray:
        outs = []
        for _ in range(MAX_FLUSH_ROUNDS):
            missing = self.received - self.returned
            if missing <= 0:
                break
            silence = np.zeros((channels, missing), np.float32)
            y = self.plugin.process(silence, sr, reset=False)
            self.returned += y.shape[1]  # the silence itself is not counted as received
            outs.append(y)
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
        self._stages = [_StemforgeStage(p) if hasattr(p, "flush") and hasattr(p, "latency_samples")
                        else _NativeStage(p) for p in self.plugins]
        self._stream: Optional[Tuple[int, int]] = None  # (sample_rate, channels) in progress
        self._hint: Optional[Tuple[str, int]] = None
        self._layout = CHANNELS_FIRST

    def __repr__(self) -> str:
        return f"<stemforge.Chain {self.plugins!r}>"

    def __len__(self) -> int:
        return len(self.plugins)

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
        self._stream, self._layout = (rate, x.shape[0]), layout
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
            tail = np.concatenate([stage.process(tail, rate, 8192, False),
                                   stage.flush(rate, channels)], axis=1)
        self.reset()
        return from_channels_first(tail, self._layout)
