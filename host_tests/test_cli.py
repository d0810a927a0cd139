"""The command line as a subprocess: stems of files, streamed from disk, written atomically."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
from pedalboard.io import AudioFile

from conftest import db, music


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "stemforge", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_separate_exports_aligned_stems_that_sum_to_the_file(tmp_path):
    src = tmp_path / "song.flac"
    x = music(3.0, 48000)
    with AudioFile(str(src), "w", 48000, 2, bit_depth=24) as f:
        f.write(x)
    with AudioFile(str(src)) as f:
        original = f.read(f.frames)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    result = run("separate", src, bad, "-o", tmp_path / "out", "--model", "fixture-stream")
    assert result.returncode == 1, result.stderr
    assert "UNTRAINED" in result.stderr and "skipped" in result.stderr and "broken.wav" in result.stderr
    stems = {}
    for name in ("drums", "bass", "other", "vocals"):
        with AudioFile(str(tmp_path / "out" / "song" / f"{name}.wav")) as f:
            assert (f.samplerate, f.num_channels, f.frames) == (48000, 2, original.shape[1])
            stems[name] = f.read(f.frames)
    assert db(sum(stems.values()) - original, original) < -80
    assert not list((tmp_path / "out").rglob(".*partial*"))

    again = run("separate", src, "-o", tmp_path / "out", "--model", "fixture-stream")
    assert again.returncode == 0 and "stems exist, skipped" in again.stdout


def test_without_a_trained_default_the_cli_says_what_to_do(tmp_path):
    src = tmp_path / "song.wav"
    with AudioFile(str(src), "w", 44100, 1) as f:
        f.write(music(0.5, channels=1))
    result = run("separate", src, "-o", tmp_path / "out", "--model", "no-such-model")
    assert result.returncode == 2 and "'no-such-model' not found" in result.stderr
    assert not (tmp_path / "out").exists()
