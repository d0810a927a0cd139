"""Deterministic test audio shared by the benchmarks, the host tests and the README's demo."""

from __future__ import annotations

import numpy as np


def music(seconds: float, sample_rate: int = 44100, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A small deterministic arrangement: kick clicks, a bass line, chords and a
    vibrato 'voice', (channels, samples) float32 peaking near 0.5."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    beat = sample_rate // 2
    drums = np.zeros(n)
    for start in range(0, n, beat):
        k = np.arange(min(2000, n - start))
        drums[start : start + len(k)] += np.sin(2 * np.pi * 60 * k / sample_rate) * np.exp(-k / 300)
    bass = 0.3 * np.sin(2 * np.pi * 55 * (1 + (t // 1) % 2 * 0.5) * t)
    chords = 0.1 * sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0))
    voice = 0.15 * np.sin(2 * np.pi * 440 * t + 3 * np.sin(2 * np.pi * 5.5 * t))
    noise = 0.01 * rng.standard_normal(n)
    left = drums * 0.4 + bass + chords * 0.8 + voice + noise
    right = drums * 0.4 + bass + chords * 1.2 + voice * 0.9 - noise
    x = np.stack([left, right])[:channels].astype(np.float32)
    return x / np.abs(x).max() * 0.5


def main() -> None:
    """python -m bench.signals OUT.wav [SECONDS]: write the demo arrangement as a WAV file."""
    import sys

    from pedalboard.io import AudioFile

    out, seconds = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    with AudioFile(out, "w", 44100, 2, bit_depth=16) as f:
        f.write(music(seconds))
    print(f"wrote {out}: {seconds:g} s of synthetic drums, bass, chords and a vibrato voice")


if __name__ == "__main__":
    main()
