"""What a new user hit (issue 21): misleading messages (defects 11-17) and the small ones
(18-21), each reproduced as the issue tells it. The command line is called in this
process (`stemforge.cli.main`), as `stemforge ...` runs it, without a new interpreter
per call."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile

import stemforge
from conftest import music
from stemforge.cli import main

MODEL = "fixture-stream"


def write(path: Path, audio: np.ndarray, rate: int = 44100, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with AudioFile(str(path), "w", rate, audio.shape[0], **options) as f:
        f.write(audio)
    return path


def song(path: Path, seconds: float = 0.3) -> Path:
    return write(path, music(seconds))


def cli(capsys, *args) -> "tuple[int, str, str]":
    """(exit status, stdout, stderr) of `stemforge ARGS...`; argparse's exits included."""
    try:
        status = main([str(a) for a in args])
    except SystemExit as e:
        status = e.code
    out = capsys.readouterr()
    return status, out.out, out.err


# -- 11: NaN is reported at its place in the file -----------------------------------------

def test_a_nan_is_reported_at_its_sample_in_the_file_not_in_the_block(tmp_path, capsys):
    x = music(3.0)
    x[1, 100000] = np.nan  # in the second block the reader reads
    x[0, 100001] = np.inf
    bad = write(tmp_path / "nan.wav", x, bit_depth=32)
    report = stemforge.export(bad, tmp_path / "out", model=MODEL)
    assert "first at sample 100000" in report.failed[0].message
    assert "channel 1" in report.failed[0].message
    status, _, err = cli(capsys, "live", "--simulate", bad, "--model", MODEL)
    assert status == 1 and "first at sample 100000" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="first at sample 100000, channel 1"):
        stemforge.StemSeparator(MODEL)(x, 44100)
