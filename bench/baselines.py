"""Reference separators for the benchmarks and the shipped-model tests: the ideal ratio
mask oracle (an upper bound for masking) and a classic DSP baseline (HPSS for drums, a
200 Hz split of the harmonic part for bass, REPET-SIM for vocals, the residual as other),
librosa only. Inputs (2, n) float32 at 44.1 kHz; outputs a dict stem -> (2, n)."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

RATE = 44100
N_FFT, HOP = 2048, 512
BASS_CUTOFF_HZ = 200.0
STEMS = ("drums", "bass", "other", "vocals")
Stems = Dict[str, np.ndarray]


def stft(x: np.ndarray) -> np.ndarray:
    """(..., n) -> (..., bins, frames) complex64."""
    import librosa

    return librosa.stft(x, n_fft=N_FFT, hop_length=HOP)


def istft(spec: np.ndarray, n: int) -> np.ndarray:
    import librosa

    return librosa.istft(spec, hop_length=HOP, n_fft=N_FFT, length=n).astype(np.float32)


def ideal_ratio_masks(mix: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """(k, 2, n): masks |S_i|^2 / sum_j |S_j|^2 from the true sources, applied to the mix."""
    power = np.abs(stft(sources)) ** 2  # (k, 2, bins, frames)
    masks = power / np.maximum(power.sum(axis=0, keepdims=True), np.finfo(np.float32).tiny)
    spec = stft(mix)  # (2, bins, frames)
    return np.stack([istft(m * spec, mix.shape[-1]) for m in masks])


def irm_oracle(mix: np.ndarray, stems: np.ndarray) -> Stems:
    """The ideal ratio masks of the four true stems."""
    return dict(zip(STEMS, ideal_ratio_masks(mix, stems)))


def repet_sim(spec: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """librosa's "vocal separation" example on one channel: (foreground, background) spectra."""
    import librosa

    full = np.abs(spec)
    frames = full.shape[1]
    width = min(int(librosa.time_to_frames(2, sr=RATE, hop_length=HOP)), (frames - 1) // 2 - 1)
    if width < 1:  # too short for a repetition model: all background
        return np.zeros_like(spec), spec
    with np.errstate(invalid="ignore", divide="ignore"):
        filt = librosa.decompose.nn_filter(full, aggregate=np.median, metric="cosine", width=width)
    filt = np.minimum(full, np.nan_to_num(filt))
    mask_bg = librosa.util.softmask(filt, 2 * (full - filt), power=2)
    mask_fg = librosa.util.softmask(full - filt, 10 * filt, power=2)
    return mask_fg * spec, mask_bg * spec


def dsp_channel(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One channel: (drums, bass, vocals) by HPSS, a 200 Hz split and REPET-SIM."""
    import librosa

    n = x.shape[-1]
    harmonic, percussive = librosa.decompose.hpss(stft(x))
    low = librosa.fft_frequencies(sr=RATE, n_fft=N_FFT) <= BASS_CUTOFF_HZ
    bass = np.where(low[:, None], harmonic, 0)
    vocals, _ = repet_sim(np.where(low[:, None], 0, harmonic))
    return istft(percussive, n), istft(bass, n), istft(vocals, n)


def dsp_baseline(mix: np.ndarray, stems: Optional[np.ndarray] = None) -> Stems:
    """Classic DSP per channel; `other` takes the residual, so the estimates sum to the mix."""
    drums, bass, vocals = (np.stack(parts) for parts in zip(*(dsp_channel(ch) for ch in mix)))
    return {"drums": drums, "bass": bass, "other": mix - drums - bass - vocals, "vocals": vocals}
