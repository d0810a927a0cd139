"""Chunk-invariant streaming sample-rate conversion (soxr), identity when rates match."""
from __future__ import annotations

import numpy as np
import soxr

MIN_RATE, MAX_RATE = 8000, 192000


def check_rate(sample_rate: float) -> int:
    if not isinstance(sample_rate, (int, float, np.integer, np.floating)) \
            or int(sample_rate) != sample_rate:
        raise ValueError(f"sample_rate must be a whole number of Hz, got {sample_rate!r}")
    rate = int(sample_rate)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"sample_rate {rate} Hz is outside the supported {MIN_RATE}-{MAX_RATE} Hz; "
                         "resample the audio first")
    return rate


class StreamResampler:
    """Resamples (channels, samples) float32 blocks; the output does not depend on the blocking.

    soxr trims its own filter delay, so the output is aligned with the input,
    but it holds samples back until its internal blocks fill: how many are
    available depends only on how many went in (see `available_after`).
    """

    def __init__(self, in_rate: int, out_rate: int, channels: int):
        self.in_rate, self.out_rate, self.channels = in_rate, out_rate, channels
        self.identity = in_rate == out_rate
        self.reset()

    def reset(self) -> None:
        self._stream = None if self.identity else soxr.ResampleStream(
            self.in_rate, self.out_rate, self.channels, dtype="float32", quality="HQ")

    def push(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        if self.identity:
            return x
        y = self._stream.resample_chunk(np.ascontiguousarray(x.T), last=last)
        return np.ascontiguousarray(y.T)

    def flush(self) -> np.ndarray:
        y = self.push(np.zeros((self.channels, 0), np.float32), last=True)
        self.reset()
        return y

    def worst_holdback(self, seconds: float = 0.5) -> float:
        """The most output samples a fresh stream owes (input * ratio - output so far),
        over `seconds` of input fed one sample at a time; soxr's pattern repeats
        with its internal block, much shorter than that."""
        if self.identity:
            return 0.0
        stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality="HQ")
        one = np.zeros((1, 1), np.float32)
        ratio, got, worst = self.out_rate / self.in_rate, 0, 0.0
        for n in range(1, int(seconds * self.in_rate) + 1):
            got += len(stream.resample_chunk(one))
            worst = max(worst, n * ratio - got)
        return worst
