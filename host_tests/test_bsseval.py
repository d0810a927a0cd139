"""stemforge's BSS Eval v4 gives museval's figures without museval's package (whose import
needs ffmpeg): per frame, on the evaluate tests' cases and on music-like stems, against
figures computed once with museval 0.4.1 by host_tests/data/make_bsseval_reference.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile

from host_tests.bsseval_cases import CASES, RATE, as_read, checksum, errors_put_in
from stemforge.apps.bsseval import bss_eval
from stemforge.apps.evaluate import EvaluationError, evaluate_track

REFERENCE = json.loads((Path(__file__).parent / "data" / "bsseval_museval.json").read_text())
TOLERANCE_DB = 0.01
PERFECT_DB = 200.0  # an estimate equal to its reference: ~300 dB of rounding noise in both


def museval_figures(case: str, metric: str) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in REFERENCE["cases"][case][metric]])


@pytest.mark.parametrize("case", list(CASES))
def test_frames_equal_museval(case):
    refs, ests = CASES[case]()
    r, e = as_read(refs, ests)
    stored = REFERENCE["cases"][case]
    assert list(r.shape) == stored["shape"]
    assert checksum(r) == pytest.approx(stored["checksum"]["references"], rel=1e-9), (
        "the case's signals changed (another numpy generator?): rerun data/make_bsseval_reference.py"
    )
    assert checksum(e) == pytest.approx(stored["checksum"]["estimates"], rel=1e-9)
    ours = bss_eval(r, e, window=RATE, hop=RATE)
    for metric in ("sdr", "isr", "sir", "sar"):
        want, got = museval_figures(case, metric), getattr(ours, metric)
        assert np.array_equal(np.isnan(want), np.isnan(got)), (metric, want, got)
        perfect = want >= PERFECT_DB
        assert np.all(got[perfect] >= PERFECT_DB), (metric, want, got)
        scored = ~np.isnan(want) & ~perfect
        assert np.abs(got[scored] - want[scored]).max(initial=0.0) <= TOLERANCE_DB, (metric, want, got)


def test_evaluate_medians_equal_museval_medians():
    refs, ests = errors_put_in()
    r, e = as_read(refs, ests)
    scores = evaluate_track({s: r[k].T for k, s in enumerate(refs)}, {s: e[k].T for k, s in enumerate(refs)}, RATE)
    for k, stem in enumerate(refs):
        for metric in ("sdr", "isr", "sir", "sar"):
            assert scores[stem][metric] == pytest.approx(
                np.nanmedian(museval_figures("errors_put_in", metric)[k]), abs=TOLERANCE_DB
            )


def test_frames_like_museval():
    """museval's framing: whole 1 s frames, a last partial frame dropped, one frame of the
    whole signal when it is shorter than the window."""
    rng = np.random.default_rng(5)
    refs = rng.standard_normal((2, 2 * RATE + 500, 2))
    ests = refs + 0.1 * rng.standard_normal(refs.shape)
    assert bss_eval(refs, ests, RATE, RATE).sdr.shape == (2, 2)
    assert bss_eval(refs[:, : RATE // 2], ests[:, : RATE // 2], RATE, RATE).sdr.shape == (2, 1)


def test_bad_inputs_are_clear_errors():
    x = np.ones((2, 1000, 2))
    with pytest.raises(ValueError, match="must both be"):
        bss_eval(x, x[:, :999], 500, 500)
    silent = x.copy()
    silent[1] = 0
    with pytest.raises(ValueError, match="reference source 1 is silent"):
        bss_eval(silent, x, 500, 500)
    # museval refuses a silent estimate of an audible reference; evaluate says what to do
    with pytest.raises(EvaluationError, match="vocals: the estimate is silent.*--global-only"):
        evaluate_track({"drums": x[0].T, "vocals": x[1].T}, {"drums": x[0].T, "vocals": silent[1].T}, 500)


def test_cli_scores_without_museval_importable(tmp_path):
    """A machine without ffmpeg cannot import museval (stempeg refuses at import): the
    command must not need it. Here museval, musdb and stempeg all fail to import."""
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("museval", "musdb", "stempeg"):
        (blocked / f"{name}.py").write_text(f"raise ImportError('{name} is blocked by this test')\n")
    refs, ests = errors_put_in()
    for folder, stems in (("ref", refs), ("est", ests)):
        (tmp_path / folder).mkdir()
        for name, x in stems.items():
            with AudioFile(str(tmp_path / folder / f"{name}.wav"), "w", RATE, 2, bit_depth=32) as f:
                f.write(np.asarray(x, np.float32))
    done = subprocess.run(
        [sys.executable, "-m", "stemforge", "evaluate", str(tmp_path / "ref"), str(tmp_path / "est"), "--json", "-"],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(blocked)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
        },
    )
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout)["tracks"]["ref"]
    for k, stem in enumerate(refs):
        assert scores[stem]["sdr"] == pytest.approx(
            np.nanmedian(museval_figures("errors_put_in", "sdr")[k]), abs=TOLERANCE_DB
        )
