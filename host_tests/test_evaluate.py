"""`stemforge evaluate`, run as a subprocess on folders of stems with known errors (its refusals
in this process: conftest.cli_here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile

from host_tests.bsseval_cases import RATE, STEMS, references, with_error
from host_tests.helpers import sdr


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stemforge", "evaluate", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def write(folder: Path, stems: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, x in stems.items():
        with AudioFile(str(folder / f"{name}.wav"), "w", RATE, x.shape[0], bit_depth=32) as f:
            f.write(x.astype(np.float32))


def test_one_track_scores_match_the_errors_put_in(tmp_path):
    refs = references(0)
    wanted = {"drums": 3.0, "bass": 8.0, "other": 0.0, "vocals": 15.0}
    ests = with_error(refs, wanted, 1)
    write(tmp_path / "ref", refs)
    write(tmp_path / "est", ests)
    done = cli(tmp_path / "ref", tmp_path / "est", "--json", "-")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    scores = report["tracks"]["ref"]
    mix = sum(refs.values())
    for s in STEMS:
        row = scores[s]
        assert row["global_sdr"] == pytest.approx(wanted[s], abs=0.01)
        assert row["nsdr"] == pytest.approx(wanted[s] - sdr(mix, refs[s]), abs=0.01)
        # White noise is neither interference nor a spatial error: BSS Eval calls it
        # artefacts (its distortion filters absorb a little of the noise, so SAR >= SDR).
        assert row["sdr"] == pytest.approx(wanted[s], abs=1.5)
        assert row["sdr"] - 0.1 <= row["sar"] <= row["sdr"] + 2.5
        assert row["sir"] > row["sdr"] + 5
    assert report["summary"]["vocals"]["global_sdr"] == pytest.approx(15.0, abs=0.01)


def test_interference_shows_in_sir_not_sar(tmp_path):
    refs = references(2)
    ests = dict(refs)
    ests["vocals"] = refs["vocals"] + 0.3 * refs["drums"]  # drums leak into the vocals
    ests["drums"] = refs["drums"] - 0.3 * refs["drums"] + 0.0
    write(tmp_path / "ref", refs)
    write(tmp_path / "est", ests)
    report = json.loads(cli(tmp_path / "ref", tmp_path / "est", "--json", "-").stdout)
    vocals = report["tracks"]["ref"]["vocals"]
    assert vocals["sir"] < vocals["sar"] - 10


def test_folders_of_tracks_a_mixture_file_and_the_summary(tmp_path):
    for k, track in enumerate(("song a", "song b")):
        refs = references(10 + k)
        write(tmp_path / "ref" / track, refs)
        write(tmp_path / "ref" / track, {"mixture": sum(refs.values())})
        write(tmp_path / "est" / track, with_error(refs, {s: 5.0 + 5 * k for s in STEMS}, k))
    out = tmp_path / "scores.json"
    done = cli(tmp_path / "ref", tmp_path / "est", "--json", out, "--global-only")
    assert done.returncode == 0, done.stderr
    assert "summary over 2 tracks" in done.stdout and "GLOBAL_SDR" in done.stdout
    report = json.loads(out.read_text())
    assert sorted(report["tracks"]) == ["song a", "song b"]
    assert report["summary"]["bass"]["global_sdr"] == pytest.approx(7.5, abs=0.01)
    assert "sdr" not in report["summary"]["bass"]  # --global-only: no BSS Eval


def test_silent_reference_stem_gives_null_not_nan(tmp_path):
    refs = references(20)
    refs["vocals"] = np.zeros_like(refs["vocals"])
    write(tmp_path / "ref", refs)
    write(tmp_path / "est", refs)
    done = cli(tmp_path / "ref", tmp_path / "est", "--json", "-")
    assert done.returncode == 0, done.stderr
    vocals = json.loads(done.stdout)["tracks"]["ref"]["vocals"]
    assert vocals["sdr"] is None


def test_the_library_gives_the_same_report_as_the_command(tmp_path):
    """The report (scores, summary, conventions, NaN as null) is the library's: a library
    call gets the JSON `stemforge evaluate --json` writes."""
    from stemforge.apps.evaluate import evaluate_folders, report_json

    refs = references(21, seconds=2.0)
    ests = with_error(refs, {s: 6.0 for s in STEMS}, 3)
    refs["vocals"] = ests["vocals"] = np.zeros_like(refs["vocals"])
    write(tmp_path / "ref", refs)
    write(tmp_path / "est", ests)
    done = cli(tmp_path / "ref", tmp_path / "est", "--json", "-")
    assert done.returncode == 0, done.stderr
    text = report_json(evaluate_folders(tmp_path / "ref", tmp_path / "est"))
    assert text == done.stdout.strip()
    report = json.loads(text)
    assert report["tracks"]["ref"]["vocals"]["sdr"] is None and "conventions" in report


def test_mismatches_are_clear_errors(tmp_path, cli_here):
    refs = references(30, seconds=1.0)
    write(tmp_path / "ref", refs)
    write(tmp_path / "est", {s: x for s, x in refs.items() if s != "bass"})
    done = cli_here("evaluate", tmp_path / "ref", tmp_path / "est")
    assert done.returncode == 1 and "no estimate for bass" in done.stderr
    write(tmp_path / "est", {"bass": refs["bass"][:, :-10]})
    done = cli_here("evaluate", tmp_path / "ref", tmp_path / "est")
    assert done.returncode == 1 and "aligned with its reference" in done.stderr
    done = cli_here("evaluate", tmp_path / "ref", tmp_path / "nowhere")
    assert done.returncode == 1 and "no such estimate folder" in done.stderr
    (tmp_path / "empty").mkdir()
    done = cli_here("evaluate", tmp_path / "empty", tmp_path / "est")
    assert done.returncode == 1 and "no stem files" in done.stderr
