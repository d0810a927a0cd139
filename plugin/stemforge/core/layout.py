"""Host buffers in and out: pedalboard's channel-layout rules, dtype and sanity checks."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

MONO_1D, CHANNELS_FIRST, CHANNELS_LAST = "mono-1d", "channels-first", "channels-last"


def _ambiguous(shape: tuple) -> str:
    return (f"Unable to determine channel layout from shape: ({shape[0]}, {shape[1]}). Provide a "
            "non-square array first to allow stemforge to determine which dimension corresponds "
            "with the number of channels and which dimension corresponds with the number of samples.")


def to_channels_first(audio: np.ndarray, hint: Optional[Tuple[str, int]] = None
                      ) -> Tuple[np.ndarray, str]:
    """Return (float32 array of shape (channels, samples), layout of the input).

    Like pedalboard: 1-D is mono; 2-D is (channels, samples) or (samples,
    channels), whichever dimension is smaller holding the channels; a square
    array is ambiguous unless `hint` (the layout and channel count seen
    earlier in the same stream) settles it. Integer audio is a TypeError.
    """
    if not isinstance(audio, np.ndarray):
        raise TypeError(f"audio must be a numpy array, got {type(audio).__name__}")
    if audio.dtype not in (np.float32, np.float64):
        raise TypeError("stemforge only supports 32-bit and 64-bit floating point audio for "
                        f"processing (got {audio.dtype}); convert integer PCM first, e.g. "
                        "audio.astype(np.float32) / 32768 for 16-bit")
    if audio.ndim == 1:
        return audio.astype(np.float32, copy=False)[None, :], MONO_1D
    if audio.ndim != 2:
        raise RuntimeError(f"Number of input dimensions must be 1 or 2 (got {audio.ndim}).")
    rows, cols = audio.shape
    layout = None
    if hint is not None:
        hinted_layout, channels = hint
        if hinted_layout == CHANNELS_FIRST and rows == channels:
            layout = CHANNELS_FIRST
        elif hinted_layout == CHANNELS_LAST and cols == channels:
            layout = CHANNELS_LAST
    if layout is None:
        if rows < cols:
            layout = CHANNELS_FIRST
        elif rows > cols:
            layout = CHANNELS_LAST
        else:
            raise RuntimeError(_ambiguous(audio.shape))
    x = audio if layout == CHANNELS_FIRST else audio.T
    return np.ascontiguousarray(x, dtype=np.float32), layout


def from_channels_first(x: np.ndarray, layout: str) -> np.ndarray:
    """Put a (channels, samples) result back into the caller's layout."""
    if layout == MONO_1D:
        return x[0]
    return x if layout == CHANNELS_FIRST else np.ascontiguousarray(x.T)


def check_channels(channels: int) -> None:
    if channels not in (1, 2):
        raise ValueError(f"stemforge processes mono or stereo audio, got {channels} channels; "
                         "split multichannel audio into mono or stereo groups and process each")


def check_finite(x: np.ndarray) -> None:
    """NaN or Inf would silently spread through every stem: refuse them where they enter."""
    if not np.isfinite(x).all():
        channel, sample = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"audio contains NaN or Inf (first at sample {sample}, channel {channel}); "
                         "clean it first, e.g. np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0)")
