"""Chunk-invariant streaming sample-rate conversion (soxr), identity when rates match."""

from __future__ import annotations

from typing import Tuple

import numpy as np
import soxr

from .contract import RESAMPLING as CONTRACT_RESAMPLING

MIN_RATE, MAX_RATE = 8000, 192000

# The soxr quality recipes of the two resamplers (host -> model, model -> host), by name,
# chosen by measurement (docs/performance.md, "Resampling in real time", bench/resampling.py; worst
# hold-backs from 44.1 kHz models):
# "hq": soxr's HQ both ways (20-bit, linear phase); its filters and internal blocks hold
#   back ~840 model + ~1000 host samples at 48 kHz: `live` reports 3036 samples (63 ms).
# "low-delay" (real time): QQ (cubic interpolation, ~2 samples) in, since every filtered
#   recipe holds back 450+ samples converting down to the model's rate; out, LQ (16-bit
#   linear phase: ~23 samples at 48 kHz, ~46 at 96 kHz, images below -110 dB) where it
#   holds back at most LOW_DELAY_OUT_SECONDS, else QQ (LQ's 2x/4x stages hold back
#   ~1000-3000). `live` then stays within 25 ms at every rate. The cost: ~38 dB SDR
#   against HQ on music at 48 kHz (~21 dB on audio-band pink noise), a droop of ~3 dB at
#   18 kHz, and cubic aliasing of content above the model's Nyquist; what is lost goes to
#   the residual stem, so the stems of a model that sums to the mix still add up exactly.
# The table itself is the contract's (contract.json, "resampling"), which the VST3 engine reads too.
RESAMPLING = {name: (p["in"], tuple(p["out"])) for name, p in CONTRACT_RESAMPLING["policies"].items()}
LOW_DELAY_OUT_SECONDS = CONTRACT_RESAMPLING["out_holdback_seconds"]


def check_resampling(resampling: str) -> str:
    if resampling not in RESAMPLING:
        raise ValueError(f"resampling must be one of {', '.join(map(repr, RESAMPLING))}, got {resampling!r}")
    return resampling


def check_rate(sample_rate: float) -> int:
    if (
        not isinstance(sample_rate, (int, float, np.integer, np.floating))
        or isinstance(sample_rate, bool)
        or int(sample_rate) != sample_rate
    ):
        raise ValueError(f"sample_rate must be a whole number of Hz, got {sample_rate!r}")
    rate = int(sample_rate)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(
            f"sample_rate {rate} Hz is outside the supported {MIN_RATE}-{MAX_RATE} Hz; resample the audio first"
        )
    return rate


class StreamResampler:
    """Resamples (channels, samples) float32 blocks; the output does not depend on the blocking.

    soxr trims its own filter delay, so the output is aligned with the input,
    but it holds samples back until its internal blocks fill: how many are
    available depends only on how many went in (see `available_after`).
    """

    def __init__(self, in_rate: int, out_rate: int, channels: int, quality: str = "HQ"):
        self.in_rate, self.out_rate, self.channels = in_rate, out_rate, channels
        self.quality = quality  # a python-soxr quality name: "QQ", "LQ", "MQ", "HQ", "VHQ"
        self.identity = in_rate == out_rate
        self.reset()

    def reset(self) -> None:
        self._stream = (
            None
            if self.identity
            else soxr.ResampleStream(self.in_rate, self.out_rate, self.channels, dtype="float32", quality=self.quality)
        )

    def push(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        if self.identity:
            return x
        y = self._stream.resample_chunk(np.ascontiguousarray(x.T), last=last)
        return np.ascontiguousarray(y.T)

    def flush(self) -> np.ndarray:
        y = self.push(np.zeros((self.channels, 0), np.float32), last=True)
        self.reset()
        return y

    def worst_holdback(self, seconds: float = CONTRACT_RESAMPLING["probe_seconds"]) -> float:
        """The most output samples a fresh stream owes (input * ratio - output so far),
        over `seconds` of input fed one sample at a time; soxr's pattern repeats
        with its internal block, much shorter than that."""
        if self.identity:
            return 0.0
        stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality=self.quality)
        one = np.zeros((1, 1), np.float32)
        ratio, got, worst = self.out_rate / self.in_rate, 0, 0.0
        for n in range(1, int(seconds * self.in_rate) + 1):
            got += len(stream.resample_chunk(one))
            worst = max(worst, n * ratio - got)
        return worst


def recipes(resampling: str, host_rate: int, model_rate: int) -> Tuple[str, str]:
    """The (host -> model, model -> host) soxr quality names of `resampling` at these rates:
    the first output recipe whose worst hold-back is within LOW_DELAY_OUT_SECONDS, or the
    last one (for "hq", HQ both ways)."""
    q_in, outs = RESAMPLING[check_resampling(resampling)]
    for q_out in outs[:-1]:
        held = StreamResampler(model_rate, host_rate, 1, q_out).worst_holdback()
        if held <= LOW_DELAY_OUT_SECONDS * host_rate:
            return q_in, q_out
    return q_in, outs[-1]
