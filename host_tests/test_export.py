"""Batch export: `stemforge.export` from Python and `stemforge separate` as a subprocess,
on the cases new users hit (issue 10, part 3)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile

import stemforge
from host_tests.helpers import MODELS, STEMS, music
from host_tests.helpers import run_cli as run

STEM_FILES = sorted(f"{s}.wav" for s in STEMS)


def write(path: Path, seconds: float = 0.3, rate: int = 44100, channels: int = 2, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with AudioFile(str(path), "w", rate, channels, **options) as f:
        f.write(music(seconds, rate, channels=channels))
    return path


def audio_files(folder: Path) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_export_is_the_library_api_of_separate(tmp_path):
    src = write(tmp_path / "song.wav", 0.5)
    report = stemforge.export([src], tmp_path / "out", model="fixture-stream", two_stems="vocals", format="flac")
    assert report.ok and [r.status for r in report.files] == ["done"]
    assert sorted(p.name for p in report.written) == ["no_vocals.flac", "vocals.flac"]
    with AudioFile(str(src)) as f:
        mix = f.read(f.frames)
    parts = []
    for p in report.written:
        with AudioFile(str(p)) as f:
            assert (f.samplerate, f.num_channels, f.frames) == (44100, 2, mix.shape[1])
            parts.append(f.read(f.frames))
    np.testing.assert_allclose(sum(parts), mix, atol=1e-4)  # 24-bit flac
    again = stemforge.export(src, tmp_path / "out", model="fixture-stream", two_stems="vocals", format="flac")
    assert [r.status for r in again.files] == ["skipped"]


@pytest.mark.parametrize(
    "layout, args",
    [
        ({"a/cd1/01.wav", "a/cd2/01.wav"}, ["a", "-r"]),
        ({"song.wav", "song.flac"}, ["song.wav", "song.flac"]),
        ({"one.wav", "two.wav"}, ["one.wav", "two.wav", "--filename", "{stem}.{ext}"]),
    ],
)
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_two_inputs_that_would_write_one_file_are_refused_before_any_audio(tmp_path, layout, args, overwrite, cli_here):
    for name in layout:
        write(tmp_path / name)
    result = cli_here("separate", *args, "-o", "out", "--model", "fixture-stream", *overwrite, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "would both write" in result.stderr and "{index}" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_rerun_inside_the_album_never_takes_its_stems_or_partials_as_inputs(tmp_path):
    album = tmp_path / "album"
    write(album / "a.wav")
    write(album / "disc2" / "b.wav")
    (album / ".hidden.partial.wav").write_bytes(b"not audio")  # a killed run's leftover
    first = run("separate", ".", "-r", "--model", "fixture-stream", cwd=album)
    assert first.returncode == 0, first.stderr
    second = run("separate", ".", "-r", "--model", "fixture-stream", cwd=album)
    assert second.returncode == 0, second.stderr
    assert "2 of 2" in second.stdout or "already complete" in second.stdout
    assert audio_files(album / "stems") == sorted([f"a/{s}" for s in STEM_FILES] + [f"b/{s}" for s in STEM_FILES])


def test_aiff_is_written_with_its_default_bit_depth(tmp_path):
    src = write(tmp_path / "song.wav")
    result = run(
        "separate", src, "-o", tmp_path / "out", "--model", "fixture-stream", "--format", "aiff", "--stems", "vocals"
    )
    assert result.returncode == 0, result.stderr
    with AudioFile(str(tmp_path / "out" / "song" / "vocals.aiff")) as f:
        assert f.file_dtype == "int24" and f.frames == int(0.3 * 44100)


def test_threads_option_and_default_of_one_thread_per_file(tmp_path):
    import torch

    src = write(tmp_path / "song.wav", 1.0)
    seen = []

    class Spy(stemforge.apps.batch.Reporter):
        def update(self, path, done, total, elapsed):
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    stemforge.export(src, tmp_path / "out", model="fixture-stream", reporter=Spy())
    assert seen and set(seen) == {1} and torch.get_num_threads() == before
    stemforge.export(src, tmp_path / "out2", model="fixture-stream", threads=2, reporter=Spy())
    assert set(seen[-1:]) == {2} and torch.get_num_threads() == before
    result = run("separate", src, "-o", tmp_path / "cli", "--model", "fixture-stream", "--threads", "2")
    assert result.returncode == 0, result.stderr
    assert run("separate", "--help").stdout.count("--threads") >= 1


@pytest.mark.parametrize(
    "ext, keep",
    [
        ("wav", lambda n: 44 + 146997 * 2),
        ("aiff", lambda n: n // 3),
        ("flac", lambda n: n // 3),
        ("flac", lambda n: n - 10),
    ],
)
def test_a_truncated_file_is_reported_and_skipped(tmp_path, ext, keep):
    """Their decoders pad a cut-short file with silence: the header's length (WAV, AIFF) or
    the last frame's position and CRC (FLAC) tell it."""
    full = write(tmp_path / f"full.{ext}", 10.0, channels=1, bit_depth=16)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: keep(len(data))])  # the header still says 441 000 frames
    result = run("separate", full, cut, "-o", tmp_path / "out", "--model", "fixture-stream")
    assert result.returncode == 1 and "ends early" in result.stderr and f"cut.{ext}" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["full"]


def test_mp3_output_is_refused_with_its_reason_before_any_work(tmp_path, cli_here):
    src = write(tmp_path / "song.wav", rate=96000)
    result = cli_here("separate", src, "-o", tmp_path / "out", "--model", "fixture-stream", "--format", "mp3")
    assert result.returncode == 2 and "mp3 output is refused" in result.stderr
    assert "line up" in result.stderr and "flac" in result.stderr
    assert not (tmp_path / "out").exists()


def test_sessions_added_on_a_rerun_or_lost_to_a_kill_are_written(tmp_path):
    src = write(tmp_path / "song.wav")
    out = tmp_path / "out"
    assert run("separate", src, "-o", out, "--model", "fixture-stream").returncode == 0
    stems_before = {p: p.stat().st_mtime_ns for p in (out / "song").glob("*.wav")}
    rerun = run("separate", src, "-o", out, "--model", "fixture-stream", "--session", "reaper")
    assert rerun.returncode == 0, rerun.stderr
    assert (out / "song" / "song.rpp").is_file()
    assert {p: p.stat().st_mtime_ns for p in (out / "song").glob("*.wav")} == stems_before
    (out / "song" / "song.rpp").unlink()  # as if a kill came between the stems and the session
    again = run("separate", src, "-o", out, "--model", "fixture-stream", "--session", "reaper")
    assert again.returncode == 0 and (out / "song" / "song.rpp").is_file()
    done = run("separate", src, "-o", out, "--model", "fixture-stream", "--session", "reaper")
    assert "complete, skipped" in done.stdout


@pytest.mark.parametrize(
    "template, folder",
    [
        ("{index:02d}-{track}/{stem}.{ext}", "01-song"),
        ("{index:02}-{track}/{stem}.{ext}", "01-song"),
        ("{index:03}/{stem}.{ext}", "001"),
    ],
)
def test_index_takes_number_format_specs(tmp_path, template, folder):
    src = write(tmp_path / "song.wav")
    result = run(
        "separate",
        src,
        "-o",
        tmp_path / "out",
        "--model",
        "fixture-stream",
        "--stems",
        "vocals",
        "--filename",
        template,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / folder / "vocals.wav").is_file()


def test_a_bad_format_spec_is_refused_before_any_work(tmp_path, cli_here):
    result = cli_here(
        "separate", "x.wav", "-o", tmp_path / "out", "--model", "fixture-stream", "--filename", "{track:d}/{stem}.{ext}"
    )
    assert result.returncode == 2 and "{index} is a number" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("clutter", ["file", "folder"])
def test_a_preset_name_is_never_read_as_a_path(tmp_path, clutter):
    src = write(tmp_path / "song.wav")
    if clutter == "file":
        (tmp_path / "live").write_text("an earlier run's leftovers")
    else:
        (tmp_path / "live").mkdir()
    result = run("separate", "song.wav", "--preset", "live", "-o", "live-out", "--stems", "vocals", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "live-out" / "song" / "vocals.wav").is_file() and src.is_file()


# -- the smaller defects (17) -------------------------------------------------------------


def test_a_file_that_fails_mid_export_leaves_no_empty_output_folder(tmp_path):
    x = music(1.0)
    x[:, 30000] = np.nan  # found only once the export has begun
    bad = tmp_path / "nan.wav"
    with AudioFile(str(bad), "w", 44100, 2, bit_depth=32) as f:
        f.write(x)
    good = write(tmp_path / "good.wav")
    result = run("separate", bad, good, "-o", tmp_path / "out", "--model", "fixture-stream")
    assert result.returncode == 1 and "NaN" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good"]


def test_a_model_that_returns_nan_fails_its_file_and_writes_nothing(tmp_path, stream_model):
    """No output file ever holds NaN or Inf: the one writer checks every block, fails the
    file naming what made the audio, and leaves no partial stem (nor the folder made for it)."""
    broken = copy.copy(stream_model)

    def step(x, state):
        y, state = stream_model.step(x, state)
        y[..., -1] = float("inf")
        return y, state

    broken.step = step
    good = write(tmp_path / "good.wav", 1.0)
    report = stemforge.export(good, tmp_path / "out", model=broken)
    assert [r.status for r in report.files] == ["failed"]
    assert "the model fixture-stream gave NaN or Inf for " in report.files[0].message
    assert not (tmp_path / "out").exists()


def test_a_stem_above_0_dbfs_in_an_integer_format_is_reported_as_clipped(tmp_path):
    """Float audio above 0 dBFS survives only in 32-bit float WAV: elsewhere it is clipped,
    the stems miss the mix there, and the run says so, naming the file and the peak."""
    loud = tmp_path / "loud.wav"
    with AudioFile(str(loud), "w", 44100, 2, bit_depth=32) as f:
        x = music(0.5)
        f.write(1.5 * x / np.abs(x).max())
    result = run(
        "separate",
        loud,
        "-o",
        tmp_path / "flac",
        "--model",
        "fixture-stream",
        "--two-stems",
        "vocals",
        "--format",
        "flac",
    )
    assert result.returncode == 0, result.stderr
    assert f"warning: {loud}: clipped at 0 dBFS: no_vocals.flac peaks at " in result.stderr
    assert "32-bit float WAV" in result.stderr and "lower the gain" in result.stderr
    report = stemforge.export(loud, tmp_path / "wav", model="fixture-stream", two_stems="vocals")
    assert report.ok and report.files[0].warnings == []  # the default, 32-bit float WAV, keeps it
    parts = []
    for p in report.written:
        with AudioFile(str(p)) as f:
            parts.append(f.read(f.frames))
    assert np.abs(parts[1]).max() > 1.0


def test_links_that_lead_nowhere_are_reported_not_a_traceback(tmp_path):
    """A symbolic link loop (or a link to a missing file) named, or in a folder, is a bad
    input reported with its reason; as the output folder it is refused before any work."""
    inputs = tmp_path / "in"
    write(inputs / "good.wav")
    (inputs / "a.wav").symlink_to("b.wav")
    (inputs / "b.wav").symlink_to("a.wav")
    (inputs / "gone.wav").symlink_to("missing.wav")
    loop = "a symbolic link to b.wav, and it leads back to itself (a loop); point it at an audio file"
    for args in (["a.wav", "good.wav", "gone.wav"], ["."]):
        result = run("separate", *args, "-o", tmp_path / "out", "--model", "fixture-stream", "--overwrite", cwd=inputs)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"skipped a.wav: a.wav: {loop}" in result.stderr
        assert "gone.wav: a symbolic link to missing.wav, and what it points to does not exist" in result.stderr
        assert (tmp_path / "out" / "good" / "vocals.wav").is_file()
    (tmp_path / "o1").symlink_to("o2")
    (tmp_path / "o2").symlink_to("o1")
    result = run("separate", inputs / "good.wav", "-o", tmp_path / "o1", "--model", "fixture-stream")
    assert result.returncode == 2 and "o1 is a symbolic link that leads nowhere" in result.stderr, result.stderr


def test_globs_take_only_audio_and_no_hidden_files(tmp_path):
    write(tmp_path / "song.wav")
    (tmp_path / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    write(tmp_path / ".hidden.wav")
    result = run("separate", "*", "-o", "out", "--model", "fixture-stream", "--stems", "vocals", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert audio_files(tmp_path / "out") == ["song/vocals.wav"]


def test_an_unknown_stem_is_refused_once_up_front(tmp_path, cli_here):
    for name in ("a.wav", "b.wav"):
        write(tmp_path / name)
    result = cli_here(
        "separate",
        tmp_path / "a.wav",
        tmp_path / "b.wav",
        "-o",
        tmp_path / "out",
        "--model",
        "fixture-stream",
        "--stems",
        "vocal",
    )
    assert result.returncode == 2 and result.stderr.count("--stems vocal") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", ["ogg", "mp3"])
def test_a_bit_depth_for_a_lossy_format_is_an_error(tmp_path, fmt, cli_here):
    result = cli_here(
        "separate", "x.wav", "-o", tmp_path / "out", "--model", "fixture-stream", "--format", fmt, "--bit-depth", "24"
    )
    assert result.returncode == 2 and ("no bit depth" in result.stderr or "refused" in result.stderr)


def test_dry_run_lists_only_what_would_be_written(tmp_path):
    done, new = write(tmp_path / "done.wav"), write(tmp_path / "new.wav")
    assert run("separate", done, "-o", tmp_path / "out", "--model", "fixture-stream").returncode == 0
    dry = run("separate", done, new, "-o", tmp_path / "out", "--model", "fixture-stream", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "new.wav would write" in dry.stdout and "done.wav would write" not in dry.stdout
    assert "1 of 2 file(s) would be exported, 1 already complete" in dry.stdout


def test_an_output_path_that_is_a_file_is_a_clear_error(tmp_path, cli_here):
    src = write(tmp_path / "song.wav")
    (tmp_path / "taken").write_text("a file")
    result = cli_here("separate", src, "-o", tmp_path / "taken", "--model", "fixture-stream")
    assert result.returncode == 2 and "is a file, not a folder" in result.stderr
    assert "Errno" not in result.stderr


def test_progress_says_each_files_position_in_the_batch(tmp_path):
    bad = tmp_path / "a-broken.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    write(tmp_path / "b.wav", 1.0)
    result = run("separate", bad, tmp_path / "b.wav", "-o", tmp_path / "out", "--model", "fixture-stream")
    assert "[2/2] b.wav" in result.stdout, result.stdout


def test_fixtures_do_not_ship_in_the_wheel(tmp_path):
    import shutil
    import zipfile

    root, src = MODELS.parent, tmp_path / "src"  # a copy: the build writes into its tree
    shutil.copytree(root / "plugin", src / "plugin", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    (src / "models").mkdir()
    for f in [root / "pyproject.toml", root / "README.md", *MODELS.glob("*.ts")]:
        shutil.copy(f, src / f.relative_to(root))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PIP_NO_INDEX": "1"},
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(tmp_path.glob("stemforge-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    models = sorted(n.rsplit("/", 1)[1] for n in names if n.endswith(".ts"))
    assert models == ["live.ts", "studio.ts"]
    assert "stemforge/core/contract.json" in names  # the model contract the package reads
