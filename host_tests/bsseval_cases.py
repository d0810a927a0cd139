"""The signals on which stemforge's BSS Eval is compared with museval's (the evaluate
tests' cases and realistic stems), shared by host_tests/test_bsseval.py and the script
that computed museval's figures once, host_tests/data/make_bsseval_reference.py."""

from __future__ import annotations

from typing import Callable, Dict, Tuple

import numpy as np

from host_tests.helpers import STEMS

RATE = 44100


def references(seed: int, seconds: float = 3.0) -> Dict[str, np.ndarray]:
    """Four independent (2, n) float32 sources (museval tells interference from artefacts
    only when the references are not alike), each with its own loudness contour."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    refs = {}
    for s in STEMS:
        envelope = np.repeat(rng.uniform(0.1, 1.0, n // 4410 + 1), 4410)[:n]
        refs[s] = (0.1 * rng.standard_normal((2, n)) * envelope).astype(np.float32)
    return refs


def with_error(refs: Dict[str, np.ndarray], sdr_db: Dict[str, float], seed: int) -> Dict[str, np.ndarray]:
    """Each estimate = reference + white noise scaled to give exactly `sdr_db` global SDR
    (float64; written to a float32 file by the tests)."""
    rng = np.random.default_rng(seed)
    out = {}
    for s, ref in refs.items():
        noise = rng.standard_normal(ref.shape)
        noise *= np.sqrt(np.sum(ref.astype(np.float64) ** 2) / np.sum(noise**2) / 10 ** (sdr_db[s] / 10))
        out[s] = ref + noise
    return out


def errors_put_in() -> Tuple[dict, dict]:
    refs = references(0)
    return refs, with_error(refs, {"drums": 3.0, "bass": 8.0, "other": 0.0, "vocals": 15.0}, 1)


def drums_leak_into_vocals() -> Tuple[dict, dict]:
    refs = references(2)
    ests = dict(refs)
    ests["vocals"] = refs["vocals"] + 0.3 * refs["drums"]
    ests["drums"] = refs["drums"] - 0.3 * refs["drums"]
    return refs, ests


def silent_vocals() -> Tuple[dict, dict]:
    """A silent reference stem is left out of BSS Eval; the other three are scored."""
    refs = references(20)
    return {s: x for s, x in refs.items() if s != "vocals"}, {s: x for s, x in refs.items() if s != "vocals"}


def song_stems(seconds: float = 4.0) -> Dict[str, np.ndarray]:
    """Music-like stems panned apart: decaying kick and snare, a bass line, chords, and a
    vibrato voice with a one-second rest (its silent frame is NaN in both implementations),
    each over a noise floor 80 dB below it as in any recording. (Without that floor, pure
    tones make BSS Eval's least-squares systems singular to rounding, and museval's own
    ISR/SIR/SAR move by dB when the input moves by 1e-12: nothing to compare with.)"""
    rng = np.random.default_rng(7)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    drums = np.zeros(n)
    for start in range(0, n, RATE // 2):
        k = np.arange(min(4000, n - start))
        drums[start : start + len(k)] += np.sin(2 * np.pi * 60 * k / RATE) * np.exp(-k / 600)
        drums[start : start + len(k)] += 0.3 * rng.standard_normal(len(k)) * np.exp(-k / 200)
    bass = 0.3 * np.sin(2 * np.pi * 55 * (1 + (t // 1) % 2 * 0.5) * t)
    chords = 0.1 * sum(np.sin(2 * np.pi * f * t + p) for f, p in ((261.6, 0.1), (329.6, 0.7), (392.0, 1.3)))
    voice = 0.15 * np.sin(2 * np.pi * 440 * t + 3 * np.sin(2 * np.pi * 5.5 * t)) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    voice[RATE : 2 * RATE] = 0.0
    pans = {"drums": 0.5, "bass": 0.45, "other": 0.7, "vocals": 0.4}
    out = {}
    for name, x in zip(STEMS, (drums, bass, chords, voice)):
        floor = 1e-4 * np.sqrt(np.mean(x**2)) * rng.standard_normal((2, n))
        if name == "vocals":
            floor[:, RATE : 2 * RATE] = 0.0  # the voice's rest stays digital silence
        out[name] = (np.stack([x * pans[name], x * (1 - pans[name])]) + floor).astype(np.float32)
    return out


def song_separated() -> Tuple[dict, dict]:
    """What a separator gets wrong: leakage between stems, a short filter (a tone change and
    a little stereo smear), a gain error, and low-level noise."""
    refs = song_stems()
    rng = np.random.default_rng(8)
    leak = {"drums": ("bass", 0.15), "bass": ("drums", 0.1), "other": ("vocals", 0.2), "vocals": ("other", 0.25)}
    ests = {}
    for s, ref in refs.items():
        other, amount = leak[s]
        x = ref.astype(np.float64) + amount * refs[other]
        x = np.stack(
            [
                np.convolve(x[0], [0.8, 0.15, -0.05])[: x.shape[1]],
                np.convolve(x[1], [0.7, 0.2, 0.05])[: x.shape[1]] + 0.05 * x[0],
            ]
        )
        ests[s] = 0.9 * x + 0.003 * rng.standard_normal(x.shape)
    return refs, ests


# name -> a function giving (references, estimates), dicts of (channels, n) arrays
CASES: Dict[str, Callable[[], Tuple[dict, dict]]] = {
    "errors_put_in": errors_put_in,
    "drums_leak_into_vocals": drums_leak_into_vocals,
    "silent_vocals": silent_vocals,
    "song_separated": song_separated,
}


def as_read(refs: dict, ests: dict) -> Tuple[np.ndarray, np.ndarray]:
    """(sources, samples, channels) float64 arrays of the signals as `stemforge evaluate`
    reads them back from float32 files."""

    def stack(d):
        return np.stack([np.asarray(d[s], np.float32).astype(np.float64).T for s in d])

    return stack(refs), stack(ests)


def checksum(x: np.ndarray) -> list:
    """Two numbers that change if the signals do (a numpy whose generator drew other values)."""
    return [float(np.sum(x)), float(np.sum(x * x))]
