"""A sample FIFO along the last axis that does not copy its whole content on every block."""

from __future__ import annotations

import numpy as np


class SampleFifo:
    """Append blocks, read and drop from the front; amortised O(block) per call.

    >>> f = SampleFifo((2,)); f.append(np.ones((2, 5), np.float32)); f.pop(3).shape
    (2, 3)
    >>> len(f)
    2
    """

    def __init__(self, lead_shape: tuple, capacity: int = 4096):
        self._buf = np.zeros(tuple(lead_shape) + (max(capacity, 1),), np.float32)
        self._start = self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    def append(self, x: np.ndarray) -> None:
        n = x.shape[-1]
        if self._end + n > self._buf.shape[-1]:
            size = len(self)
            if size + n > self._buf.shape[-1] // 2:  # grow, keeping room to slide
                grown = np.zeros(self._buf.shape[:-1] + (2 * (size + n),), np.float32)
                grown[..., :size] = self._buf[..., self._start : self._end]
                self._buf = grown
            else:  # slide the content to the front
                self._buf[..., :size] = self._buf[..., self._start : self._end]
            self._start, self._end = 0, size
        self._buf[..., self._end : self._end + n] = x
        self._end += n

    def peek(self, n: int) -> np.ndarray:
        """A view of the first n samples (valid until the next append)."""
        return self._buf[..., self._start : self._start + min(n, len(self))]

    def drop(self, n: int) -> None:
        self._start += min(n, len(self))
        if self._start == self._end:
            self._start = self._end = 0

    def pop(self, n: int) -> np.ndarray:
        out = self.peek(n).copy()
        self.drop(n)
        return out
