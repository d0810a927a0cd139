"""BSS Eval v4 (SDR, ISR, SIR, SAR per frame) in numpy alone: the figures of
``museval.evaluate(references, estimates, win, hop)`` (its default mode "v4":
``bss_eval_images`` criteria with time-invariant distortion filters of 512
taps fitted once on the whole track, then scored frame by frame), without
museval's package, whose import pulls in musdb and stempeg and needs ffmpeg.

The computation follows museval's ``metrics.bss_eval`` step for step (same
correlations, the same regularised least-squares systems, the same frames and
silent-frame rule), restricted to what SiSEC/stemforge use: no permutation
search, no framewise filters, no ``bss_eval_sources`` variant. It differs only
in bookkeeping: the interference filters of all estimates are solved in one
call (one factorisation of the references' Gram matrix instead of one per
source), convolutions are done with real FFTs, and cross-spectra are formed
one pair at a time so memory stays near that of the signals' spectra.
``host_tests/test_bsseval.py`` checks it against figures computed with museval
0.4.1 (``host_tests/data/make_bsseval_reference.py``): equal to 1e-6 dB.

Where the references are nearly linearly dependent over 512 lags (pure tones
with no noise floor at all), the least-squares systems are singular to
rounding, and ISR, SIR and SAR depend on rounding in museval too (its figures
move by dB when the references move by 1e-12); SDR does not. Above about
250 dB (an estimate equal to its reference) all figures are rounding noise.

museval is MIT-licensed (Copyright (c) 2018 sigsep), itself derived from
mir_eval's ``separation`` module (MIT). References: E. Vincent, R. Gribonval,
C. Fevotte, "Performance measurement in blind audio source separation", IEEE
TASLP 14(4), 2006; A. Liutkus, F.-R. Stoter, N. Ito, "The 2018 Signal
Separation Evaluation Campaign", LVA/ICA 2018.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

FILTER_LEN = 512  # museval's distortion filters: lags 0..511 samples


class BssEvalScores(NamedTuple):
    """Each (sources, frames) in dB; NaN for a frame where any reference or estimate is silent."""

    sdr: np.ndarray
    isr: np.ndarray
    sir: np.ndarray
    sar: np.ndarray


def _fft_size(n: int) -> int:
    return int(2 ** np.ceil(np.log2(n + FILTER_LEN - 1.0)))


def _any_silent(sources: np.ndarray) -> bool:
    """museval's test: a source whose channels sum to zero at every sample."""
    return bool(np.any(np.all(np.sum(sources, axis=2) == 0, axis=1)))


def _lagged(correlation: np.ndarray) -> np.ndarray:
    """Circular correlation at lags 0, -1, ..., -(FILTER_LEN - 1)."""
    return np.concatenate([correlation[:1], correlation[-1:-FILTER_LEN:-1]])


def _toeplitz(column: np.ndarray, row: np.ndarray) -> np.ndarray:
    n = len(column)
    values = np.concatenate([row[::-1], column[1:]])
    return values[np.arange(n)[:, None] - np.arange(len(row))[None, :] + len(row) - 1]


def _db(num: float, den: float) -> float:
    return float("inf") if den == 0 else float(10 * np.log10(num / den))


def bss_eval(references: np.ndarray, estimates: np.ndarray, window: int, hop: int) -> BssEvalScores:
    """BSS Eval v4 of (sources, samples, channels) estimates against their references,
    over frames of `window` samples every `hop` (one frame of the whole signal when it is
    not longer than `window`; a last partial frame is dropped, as museval does).

    Raises ValueError when the shapes differ or a reference or estimate is all zeros
    (museval's rule: the least-squares fit is then ambiguous)."""
    refs = np.asarray(references, np.float64)
    ests = np.asarray(estimates, np.float64)
    if refs.ndim != 3 or refs.shape != ests.shape:
        raise ValueError(
            f"references {refs.shape} and estimates {ests.shape} must both be (sources, samples, channels)"
        )
    if window < 1 or hop < 1:
        raise ValueError(f"window ({window}) and hop ({hop}) must be at least one sample")
    nsrc, n, nchan = refs.shape
    for name, x in (("reference", refs), ("estimate", ests)):
        silent = np.flatnonzero(np.all(np.sum(x, axis=2) == 0, axis=1))
        if len(silent):
            raise ValueError(f"{name} source {int(silent[0])} is silent (all zeros): BSS Eval cannot score it")
    L = FILTER_LEN
    K = nsrc * nchan
    nfft = _fft_size(n)
    ref_spec = np.fft.rfft(refs, n=nfft, axis=1).transpose(0, 2, 1).reshape(K, -1)
    est_spec = np.fft.rfft(ests, n=nfft, axis=1).transpose(0, 2, 1).reshape(K, -1)

    # Gram matrix of the references delayed by 0..L-1 samples, indexed
    # (source, channel, lag) x (source, channel, lag).
    gram = np.zeros((K, L, K, L))
    for a in range(K):
        for b in range(a, K):
            corr = np.fft.irfft(ref_spec[b] * np.conj(ref_spec[a]), n=nfft)
            block = _toeplitz(_lagged(corr), corr[:L])
            gram[b, :, a, :] = block
            gram[a, :, b, :] = block.T
    # Correlations of the delayed references with every estimate channel.
    cross = np.zeros((K, L, K))
    for a in range(K):
        for e in range(K):
            cross[a, :, e] = _lagged(np.fft.irfft(ref_spec[a] * np.conj(est_spec[e]), n=nfft))
    del ref_spec, est_spec
    eps = np.finfo(float).eps
    # Interference filters: each estimate from all references (one system, K columns).
    full = gram.reshape(K * L, K * L)
    filters = np.linalg.solve(full + eps * np.eye(K * L), cross.reshape(K * L, K))
    # (estimate, source, channel in, lag, channel out)
    filters = filters.reshape(nsrc, nchan, L, nsrc, nchan).transpose(3, 0, 1, 2, 4)
    # Spatial filters: each estimate from its own reference only.
    own = np.empty((nsrc, nchan, L, nchan))
    for j in range(nsrc):
        rows = slice(j * nchan, (j + 1) * nchan)
        g = gram[rows, :, rows, :].reshape(nchan * L, nchan * L)
        own[j] = np.linalg.solve(g + eps * np.eye(nchan * L), cross[rows, :, rows].reshape(nchan * L, nchan)).reshape(
            nchan, L, nchan
        )
    del gram, cross, full

    if window < n:
        frames = [(t * hop, min(t * hop + window, n)) for t in range((n - window + hop) // hop)]
    else:
        frames = [(0, n)]
    scores = np.full((4, nsrc, len(frames)), np.nan)
    spectra = {}  # frame FFT size -> the filters' spectra
    for t, (start, stop) in enumerate(frames):
        ref, est = refs[:, start:stop], ests[:, start:stop]
        if _any_silent(ref) or _any_silent(est):
            continue
        m = stop - start
        out = m + L - 1
        size = _fft_size(m)
        if size not in spectra:
            spectra[size] = (np.fft.rfft(filters, n=size, axis=3), np.fft.rfft(own, n=size, axis=2))
        filters_f, own_f = spectra[size]
        ref_f = np.fft.rfft(ref, n=size, axis=1)  # (source, freq, channel)
        for j in range(nsrc):
            s_true = np.zeros((out, nchan))
            s_true[:m] = ref[j]
            own_proj = np.fft.irfft(np.einsum("fk,kfc->fc", ref_f[j], own_f[j]), n=size, axis=0)[:out]
            all_proj = np.fft.irfft(np.einsum("sfk,skfc->fc", ref_f, filters_f[j]), n=size, axis=0)[:out]
            e_spat = own_proj - s_true
            e_interf = all_proj - own_proj
            e_artif = -all_proj
            e_artif[:m] += est[j]
            energy = np.sum(s_true**2)
            scores[:, j, t] = (
                _db(energy, np.sum((e_spat + e_interf + e_artif) ** 2)),
                _db(energy, np.sum(e_spat**2)),
                _db(np.sum(own_proj**2), np.sum(e_interf**2)),
                _db(np.sum(all_proj**2), np.sum(e_artif**2)),
            )
    return BssEvalScores(*scores)
