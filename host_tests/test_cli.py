"""The command line as a subprocess: stems of files, streamed from disk, written atomically.
Options refused before any work run main() in this process (conftest.cli_here)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from pedalboard.io import AudioFile

from host_tests.helpers import db, music
from host_tests.helpers import run_cli as run


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
    assert again.returncode == 0 and "complete, skipped" in again.stdout


def test_without_a_trained_default_the_cli_says_what_to_do(tmp_path, cli_here):
    src = tmp_path / "song.wav"
    with AudioFile(str(src), "w", 44100, 1) as f:
        f.write(music(0.5, channels=1))
    result = cli_here("separate", src, "-o", tmp_path / "out", "--model", "no-such-model")
    assert result.returncode == 2 and "'no-such-model' not found" in result.stderr
    assert not (tmp_path / "out").exists()


def long_file(path, minutes: float, rate: int = 44100) -> None:
    """Minutes of mono noise as 16-bit WAV, written in pieces (little memory)."""
    rng = np.random.default_rng(0)
    with AudioFile(str(path), "w", rate, 1, bit_depth=16) as f:
        for _ in range(int(minutes * 60)):
            f.write((rng.standard_normal((1, rate)) * 0.1).astype(np.float32))


def start(*args, cwd=None):
    return subprocess.Popen(
        [sys.executable, "-m", "stemforge", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


def wait_for_partials(folder, proc, timeout=300.0):
    import time

    deadline = time.monotonic() + timeout  # a guard against a hang: startup is slow on a busy machine
    while time.monotonic() < deadline and proc.poll() is None:
        if list(folder.rglob(".*.partial.*")):
            return True
        time.sleep(0.02)
    return False


import signal  # noqa: E402

import pytest  # noqa: E402


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_export_leaves_no_partial_stem_and_a_rerun_completes(tmp_path, how):
    src, out = tmp_path / "long.wav", tmp_path / "out"
    long_file(src, 3.0)
    proc = start("separate", src, "-o", out, "--model", "fixture-stream", "-q")
    assert wait_for_partials(out, proc), "the export finished before it could be interrupted"
    proc.send_signal(how)
    proc.wait(timeout=300)
    assert not [p for p in out.rglob("*.wav") if not p.name.startswith(".")], "a stem was left under its final name"
    if how == signal.SIGTERM:  # a clean stop removes its partial files too
        assert proc.returncode == 130 and not list(out.rglob(".*partial*"))
    rerun = run("separate", src, "-o", out, "--model", "fixture-stream", "-q")
    assert rerun.returncode == 0, rerun.stderr
    stems = sorted(p.name for p in (out / "long").iterdir())
    assert stems == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]
    with AudioFile(str(out / "long" / "vocals.wav")) as f:
        assert f.frames == 3 * 60 * 44100
    assert not list(out.rglob(".*partial*"))


CTRL_C = """
import os, runpy, signal, sys
when = sys.argv.pop(1)
if when == "importing torch":
    class Hook:
        def find_spec(self, name, path=None, target=None):
            if name == "torch":
                sys.meta_path.remove(self)
                os.kill(os.getpid(), signal.SIGINT)
            return None
    sys.meta_path.insert(0, Hook())
else:
    import torch
    load = torch.jit.load

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return load(*args, **kwargs)
    torch.jit.load = interrupted
runpy.run_module("stemforge", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("when", ["importing torch", "loading the model"])
def test_ctrl_c_before_the_batch_is_one_line_and_exit_130(tmp_path, when):
    """Ctrl-C (SIGINT, sent by the process to itself at that moment) in the first seconds:
    one short line, no traceback, exit status 130, as during the batch."""
    src = tmp_path / "song.wav"
    long_file(src, 1 / 60)
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C, when, "separate", src, "-o", tmp_path / "out", "--model", "fixture-stream"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 130 and done.stderr.strip() == "stemforge: interrupted", done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("template", ["../{stem}.{ext}", "{track}/../../{stem}.{ext}", "/tmp/{stem}.{ext}"])
def test_no_template_writes_outside_the_output_folder(tmp_path, template, cli_here):
    src = tmp_path / "song.wav"
    with AudioFile(str(src), "w", 44100, 2) as f:
        f.write(music(0.3))
    result = cli_here("separate", src, "-o", tmp_path / "out", "--model", "fixture-stream", "--filename", template)
    assert result.returncode == 2 and "outside the output folder" in result.stderr  # before any work
    assert not [p for p in tmp_path.rglob("*") if p.suffix == ".wav" and p != src]


def test_track_names_cannot_escape_and_inputs_are_never_overwritten(tmp_path, cli_here):
    out = tmp_path / "out"
    (out / "song").mkdir(parents=True)
    victim = out / "song" / "vocals.wav"
    with AudioFile(str(victim), "w", 44100, 2) as f:
        f.write(music(0.3))
    before = victim.read_bytes()
    result = cli_here(
        "separate", victim, "-o", out, "--model", "fixture-stream", "--filename", "song/{stem}.{ext}", "--overwrite"
    )
    assert result.returncode == 2 and "would overwrite the input" in result.stderr  # before any work
    assert victim.read_bytes() == before


def test_formats_two_stems_dry_run_folders_and_jobs(tmp_path):
    album = tmp_path / "album"
    (album / "cd2").mkdir(parents=True)
    for name, rate in (("a", 44100), ("b", 48000), ("cd2/c", 22050)):
        with AudioFile(str(album / f"{name}.flac"), "w", rate, 2, bit_depth=24) as f:
            f.write(music(1.0, rate))
    out = tmp_path / "out"
    dry = run(
        "separate",
        album,
        "-r",
        "-o",
        out,
        "--model",
        "fixture-stream",
        "--dry-run",
        "--two-stems",
        "vocals",
        "--format",
        "flac",
        "--bit-depth",
        "16",
    )
    assert dry.returncode == 0 and dry.stdout.count("would write") == 3 and not out.exists()
    result = run(
        "separate",
        album,
        "-r",
        "-o",
        out,
        "--model",
        "fixture-stream",
        "-j",
        "2",
        "--two-stems",
        "vocals",
        "--format",
        "flac",
        "--bit-depth",
        "16",
        "--filename",
        "{index}-{track}/{model}-{stem}.{ext}",
    )
    assert result.returncode == 0, result.stderr
    for name, rate in (("a", 44100), ("b", 48000), ("c", 22050)):
        folder = next(out.glob(f"*-{name}"))
        parts = {}
        for stem in ("vocals", "no_vocals"):
            with AudioFile(str(folder / f"fixture-stream-{stem}.flac")) as f:
                assert (f.samplerate, f.num_channels, f.frames) == (rate, 2, rate)
                parts[stem] = f.read(f.frames)
        with AudioFile(str(next(album.rglob(f"{name}.flac")))) as f:
            original = f.read(f.frames)
        assert db(parts["vocals"] + parts["no_vocals"] - original, original) < -70  # 16-bit files
    top_only = run(
        "separate",
        album / "*.flac",
        "-o",
        tmp_path / "top",
        "--model",
        "fixture-stream",
        "--format",
        "ogg",
        "--stems",
        "vocals",
        "-q",
    )
    assert top_only.returncode == 0, top_only.stderr
    assert sorted(p.parent.name for p in (tmp_path / "top").rglob("*.ogg")) == ["a", "b"]


def test_bad_options_fail_before_any_work(tmp_path, cli_here):
    for args, message in (
        (["--format", "flac", "--bit-depth", "32"], "flac takes bit depths 16, 24"),
        (["--filename", "{track}.{ext}"], "needs {stem}"),
        (["--filename", "{song}/{stem}.{ext}"], "unknown field(s) {song}"),
        (["--two-stems", "guitar"], "--two-stems guitar"),
    ):
        result = cli_here("separate", "missing.wav", "-o", tmp_path / "out", "--model", "fixture-stream", *args)
        assert result.returncode in (1, 2) and message in result.stderr, (args, result.stderr)
        assert not (tmp_path / "out").exists()
