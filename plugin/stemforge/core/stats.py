"""Demucs's track statistics of the input (numpy only): the window engine normalises by them
(``input_normalization`` "track") and the readers compute them in one pass over a file."""

from __future__ import annotations

from typing import Tuple

import numpy as np


class RunningStats:
    """Mean and standard deviation of the mono mix of a stream's first n samples,
    computed as Demucs computes them on a whole track (unbiased std, + 1e-8)."""

    def __init__(self):
        self.count, self.total, self.squares = 0, 0.0, 0.0

    def add(self, x: np.ndarray) -> None:
        mono = x.mean(axis=-2, dtype=np.float64)  # (batch, n): the mean over channels
        self.count += mono.shape[-1]
        self.total += float(mono.sum(axis=-1).mean())
        self.squares += float((mono**2).sum(axis=-1).mean())

    def get(self) -> Tuple[float, float]:
        if self.count < 2:
            return 0.0, 1.0
        mean = self.total / self.count
        var = max(self.squares - self.count * mean * mean, 0.0) / (self.count - 1)
        return mean, float(np.sqrt(var)) + 1e-8


def track_stats(x: np.ndarray) -> Tuple[float, float]:
    """Demucs's whole-track statistics of (channels, n) audio: the mean and std of its mono mix."""
    stats = RunningStats()
    stats.add(np.asarray(x, np.float32)[None])
    return stats.get()
