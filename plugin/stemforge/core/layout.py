"""Host buffers in and out: pedalboard's channel-layout rules, dtype and sanity checks."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

MONO_1D, CHANNELS_FIRST, CHANNELS_LAST = "mono-1d", "channels-first", "channels-last"


def _ambiguous(shape: tuple) -> str:
    return (
        f"Unable to determine channel layout from shape: ({shape[0]}, {shape[1]}). Provide a "
        "non-square array first to allow stemforge to determine which dimension corresponds "
        "with the number of channels and which dimension corresponds with the number of samples."
    )


def hinted_layout(rows: int, cols: int, hint: Optional[Tuple[str, int]]) -> Optional[str]:
    """The layout of a (rows, cols) block by the stream's `hint` (layout, channel count): the
    dimension that equals the channel count holds the channels, a square block takes the hinted
    layout; None if neither dimension is the channel count (or there is no hint)."""
    if hint is None:
        return None
    layout, channels = hint
    if rows == channels and cols == channels:
        return layout
    if rows == channels:
        return CHANNELS_FIRST
    if cols == channels:
        return CHANNELS_LAST
    return None


def to_channels_first(audio: np.ndarray, hint: Optional[Tuple[str, int]] = None) -> Tuple[np.ndarray, str]:
    """Return (float32 array of shape (channels, samples), layout of the input).

    Like pedalboard: 1-D is mono; 2-D is (channels, samples) or (samples,
    channels), whichever dimension is smaller holding the channels. A `hint`
    (the layout and channel count of the stream, from prepare() or earlier
    calls) settles small blocks: the dimension that equals the channel count
    holds the channels ((2, 1) and (1, 2) are one stereo sample each), and a
    square block takes the hinted layout; without a hint a square array is
    ambiguous. Audio that is not floating point is a TypeError.
    """
    check_array(audio)
    if audio.ndim == 1:
        return audio.astype(np.float32, copy=False)[None, :], MONO_1D
    if audio.ndim != 2:
        raise RuntimeError(f"Number of input dimensions must be 1 or 2 (got {audio.ndim}).")
    rows, cols = audio.shape
    layout = hinted_layout(rows, cols, hint)
    if layout is None:
        if rows < cols:
            layout = CHANNELS_FIRST
        elif rows > cols:
            layout = CHANNELS_LAST
        else:
            raise RuntimeError(_ambiguous(audio.shape))
    x = audio if layout == CHANNELS_FIRST else audio.T
    return np.ascontiguousarray(x, dtype=np.float32), layout


def check_array(audio) -> None:
    """Only float32 and float64 numpy arrays are audio here; anything else is a TypeError
    that says how to convert it (before any attribute of it is used)."""
    if not isinstance(audio, np.ndarray):
        raise TypeError(
            f"audio must be a numpy array of float32 or float64, got "
            f"{type(audio).__name__}; e.g. np.asarray(audio, np.float32)"
        )
    if audio.dtype not in (np.float32, np.float64):
        if np.issubdtype(audio.dtype, np.floating):
            how = "convert it first: audio.astype(np.float32)"
        else:
            how = "convert integer PCM first, e.g. audio.astype(np.float32) / 32768 for 16-bit"
        raise TypeError(
            f"stemforge only supports 32-bit and 64-bit floating point audio for processing (got {audio.dtype}); {how}"
        )


def from_channels_first(x: np.ndarray, layout: str) -> np.ndarray:
    """Put a (channels, samples) result back into the caller's layout."""
    if layout == MONO_1D:
        return x[0]
    return x if layout == CHANNELS_FIRST else np.ascontiguousarray(x.T)


def check_layout(layout: str) -> None:
    if layout not in (CHANNELS_FIRST, CHANNELS_LAST):
        raise ValueError(
            f"layout must be {CHANNELS_FIRST!r} (channels, samples) or "
            f"{CHANNELS_LAST!r} (samples, channels), got {layout!r}"
        )


def check_channels(channels: int) -> None:
    if isinstance(channels, bool) or channels not in (1, 2):
        raise ValueError(
            f"stemforge processes mono or stereo audio, got {channels} channels; "
            "split multichannel audio into mono or stereo groups and process each"
        )


def first_non_finite(x: np.ndarray) -> Optional[Tuple[int, int]]:
    """(sample, channel) of the earliest NaN or Inf in (channels, samples) `x`, or None."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return None
    sample = int(np.flatnonzero(bad.any(axis=0))[0])
    return sample, int(np.flatnonzero(bad[:, sample])[0])


def check_finite(x: np.ndarray) -> None:
    """NaN or Inf would silently spread through every stem: refuse them where they enter."""
    where = first_non_finite(x)
    if where is not None:
        raise ValueError(
            f"audio contains NaN or Inf (first at sample {where[0]}, channel {where[1]}); "
            "clean it first, e.g. np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0)"
        )
