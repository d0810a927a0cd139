"""Long singing-stream recordings with known truth, rendered from scratch (no assets):
songs of several styles, talk between them, silences.

A sung voice holds notes on a melody, with vibrato, formants of a vowel and
short unvoiced consonants between notes, over a band (drums, bass, chords).
Talk is a voice that glides through short syllables with pauses, alone or
over quiet background music. Used by host_tests/test_sections.py and
bench/sections.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

RATE = 44100
VOWELS = {"a": (800, 1150, 2900), "e": (400, 1700, 2600), "o": (450, 800, 2830), "i": (300, 2200, 3000)}


def _formant_voice(f0: np.ndarray, vowel: str, rng: np.random.Generator) -> np.ndarray:
    """A harmonic source at the instantaneous pitch `f0` (Hz per sample), shaped by a
    vowel's formants (one resonance gain per harmonic, recomputed per sample block)."""
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    formants = VOWELS[vowel]
    mean_f0 = float(np.mean(f0[f0 > 0])) if np.any(f0 > 0) else 150.0
    weights = []  # harmonic h: gain * exp(i offset), so that it sounds as gain * sin(h phase + offset)
    for h in range(1, 30):
        freq = h * mean_f0
        if freq > 8000:
            break
        gain = sum(1.0 / (1 + ((freq - fc) / (0.12 * fc)) ** 2) for fc in formants) / h**0.5
        weights.append(gain * np.exp(1j * rng.uniform(0, 2 * np.pi)))
    # sum_h w_h z**h with z = exp(i phase), by Horner's rule: a complex product per harmonic
    # and sample where a sine each made this the slowest part of a long stream
    z = np.exp(1j * phase)
    total = np.full(len(f0), weights[-1] if weights else 0j)
    for w in reversed(weights[:-1]):
        np.multiply(total, z, out=total)
        total += w
    np.multiply(total, z, out=total)
    out = total.imag
    return out * (f0 > 0)


def _envelope(n: int, attack: int, release: int) -> np.ndarray:
    env = np.ones(n)
    a, r = min(attack, n // 2), min(release, n // 2)
    env[:a] = np.linspace(0, 1, a)
    env[n - r :] = np.linspace(1, 0, r)
    return env


def band(seconds: float, tempo: float, key: float, rng: np.random.Generator, style: str = "pop") -> np.ndarray:
    """Drums, bass and chords, mono."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    beat = int(RATE * 60 / tempo)
    out = np.zeros(n)
    if style != "ballad":
        for i, start in enumerate(range(0, n, beat)):
            k = np.arange(min(3000, n - start))
            out[start : start + len(k)] += 0.8 * np.sin(2 * np.pi * 55 * k / RATE) * np.exp(-k / 400)
            if i % 2:
                m = min(4000, n - start)
                out[start : start + m] += 0.25 * rng.standard_normal(m) * np.exp(-np.arange(m) / 900)
            hat = start + beat // 2
            if hat < n:
                m = min(800, n - hat)
                out[hat : hat + m] += 0.08 * rng.standard_normal(m) * np.exp(-np.arange(m) / 150)
    progression = [0, 5, 7, 3] if style != "ballad" else [0, 9, 5, 7]
    bar = 4 * beat
    for j, start in enumerate(range(0, n, bar)):
        root = key * 2 ** (progression[j % 4] / 12)
        m = min(bar, n - start)
        tt = t[:m]
        env = _envelope(m, 500, 2000)
        out[start : start + m] += 0.3 * np.sin(2 * np.pi * root / 2 * tt) * env
        for interval in (0, 4, 7):
            f = root * 2 ** (interval / 12)
            out[start : start + m] += 0.07 * np.sign(np.sin(2 * np.pi * f * tt)) * env
    return out


def sung(seconds: float, key: float, rng: np.random.Generator, rest: float = 0.15) -> np.ndarray:
    """A voice singing held notes of a melody in `key`, with vibrato and consonants."""
    n = int(seconds * RATE)
    f0 = np.zeros(n)
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    pos = int(rng.uniform(0, 0.5) * RATE)
    vowel = rng.choice(list(VOWELS))
    while pos < n:
        length = int(rng.uniform(0.35, 1.2) * RATE)
        note = key * 2 * 2 ** (scale[rng.integers(len(scale))] / 12)
        end = min(n, pos + length)
        tt = np.arange(end - pos) / RATE
        vibrato = 2 ** (0.4 * np.sin(2 * np.pi * 5.5 * tt) * np.clip(tt / 0.3, 0, 1) / 12)
        f0[pos:end] = note * vibrato
        pos = end + int(rng.uniform(0.03, rest) * RATE)
        if rng.random() < 0.1:
            pos += int(rng.uniform(0.5, 1.5) * RATE)  # a breath between phrases
    voice = _formant_voice(f0, vowel, rng)
    voiced = (f0 > 0).astype(float)
    smooth = np.convolve(voiced, np.ones(441) / 441, mode="same")
    onsets = np.flatnonzero(np.diff(voiced) > 0)
    for o in onsets:  # an unvoiced consonant before each note
        m = min(1500, o)
        voice[o - m : o] += 0.15 * rng.standard_normal(m) * np.hanning(m)
    return voice * smooth


def talk(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A speaking voice: short syllables gliding in pitch, consonants, pauses."""
    n = int(seconds * RATE)
    f0 = np.zeros(n)
    base = rng.uniform(100, 220)
    pos = 0
    while pos < n:
        length = int(rng.uniform(0.08, 0.22) * RATE)
        end = min(n, pos + length)
        tt = np.arange(end - pos) / RATE
        start_pitch = base * 2 ** (rng.uniform(-4, 4) / 12)
        f0[pos:end] = start_pitch * 2 ** (rng.uniform(-6, 6) / 12 * tt / max(tt[-1], 1e-3))
        pos = end + int(rng.uniform(0.04, 0.15) * RATE)
        if rng.random() < 0.12:
            pos += int(rng.uniform(0.3, 1.0) * RATE)
    voice = _formant_voice(f0, rng.choice(list(VOWELS)), rng)
    voiced = (f0 > 0).astype(float)
    voice *= np.convolve(voiced, np.ones(221) / 221, mode="same")
    for o in np.flatnonzero(np.diff(voiced) > 0):
        m = min(1200, o)
        voice[o - m : o] += 0.2 * rng.standard_normal(m) * np.hanning(m)
    return voice


@dataclass
class Part:
    kind: str  # "song", "talk", "silence", "bgm-talk"
    seconds: float
    style: str = "pop"


def render_stream(parts: List[Part], seed: int = 0) -> Tuple[np.ndarray, List[Tuple[float, float]]]:
    """Stereo audio of the parts in order, and the (start, end) of each song in seconds.
    Songs two in a row are two songs."""
    rng = np.random.default_rng(seed)
    pieces, songs, t = [], [], 0.0
    for part in parts:
        n = int(part.seconds * RATE)
        if part.kind == "song":
            key = rng.uniform(90, 160)
            tempo = rng.uniform(70, 80) if part.style == "ballad" else rng.uniform(95, 150)
            music = band(part.seconds, tempo, key, rng, part.style)
            voice = sung(part.seconds, key, rng)
            if part.style == "ballad":  # a quiet middle: the band drops, the voice rests
                mid = slice(int(0.46 * n), int(0.54 * n))
                music[mid] *= 0.2
                voice[mid] *= 0.0
            audio = 0.5 * music + 0.6 * voice
            songs.append((t, t + part.seconds))
        elif part.kind == "talk":
            audio = 0.5 * talk(part.seconds, rng)
        elif part.kind == "bgm-talk":
            audio = 0.5 * talk(part.seconds, rng) + 0.05 * band(part.seconds, 90, 110, rng, "ballad")
        else:
            audio = 1e-4 * rng.standard_normal(n)
        stereo = np.stack([audio, audio * rng.uniform(0.8, 1.0)])
        pieces.append(stereo[:, :n])
        t += n / RATE
    x = np.concatenate(pieces, axis=1)
    return (0.5 * x / np.abs(x).max()).astype(np.float32), songs
