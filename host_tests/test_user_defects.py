"""What a new user hit (issue 21): misleading messages (defects 11-17) and the small ones
(18-21), each reproduced as the issue tells it. The command line is called in this
process (`stemforge.cli.main`), as `stemforge ...` runs it, without a new interpreter
per call."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile

import stemforge
from host_tests.helpers import music
from stemforge.cli import main
from stemforge.errors import ExportError

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


# -- 12: an output folder that is the input folder ----------------------------------------


@pytest.mark.parametrize(
    "template", ["{track}/{stem}.{ext}", "{stem}/{track}.{ext}", "{index:02d}-{track}/{stem}.{ext}"]
)
def test_a_recursive_rerun_into_the_input_folder_skips_its_complete_outputs(tmp_path, capsys, template):
    album = tmp_path / "album"
    song(album / "song.wav")
    song(album / "cd2" / "other song.wav")
    args = ["separate", album, "-r", "-o", album, "--model", MODEL, "--stems", "vocals,drums", "--filename", template]
    assert cli(capsys, *args)[0] == 0
    written = sorted(p for p in album.rglob("*") if p.is_file())
    assert len(written) == 2 + 2 * 2
    status, out, err = cli(capsys, *args)
    assert status == 0 and "0 of 2 file(s) exported, 2 already complete" in out, err
    assert sorted(p for p in album.rglob("*") if p.is_file()) == written
    if template == "{track}/{stem}.{ext}":  # a file named explicitly is taken as it is
        with pytest.raises(ExportError, match="would overwrite the input"):
            stemforge.export([album, album / "song" / "vocals.wav"], album, model=MODEL, recursive=True, dry_run=True)


def test_a_rerender_into_the_input_folder_skips_its_outputs(tmp_path, capsys):
    song(tmp_path / "song.wav")
    plan = tmp_path / "plan.toml"
    plan.write_text(
        'inputs = ["."]\n[[chain]]\nplugin = "Gain"\ngain_db = -6\n'
        '[output]\nfolder = "."\nfilename = "{track}-quiet.{ext}"\n'
    )
    assert cli(capsys, "render", plan)[0] == 0
    status, out, err = cli(capsys, "render", plan)
    assert status == 0 and "0 file(s) rendered, 1 skipped" in out, err
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == ["song-quiet.wav", "song.wav"]


# -- 13: the name template's extension is checked with the other options ------------------


@pytest.mark.parametrize(
    "template, fmt, says",
    [
        ("{stem}", "wav", "has no extension, but the format is wav"),
        ("{stem}.mp3", "wav", "ends in .mp3, but the format is wav"),
        ("{stem}.flac", "wav", "ends in .flac, but the format is wav"),
        ("{track}/{stem}.txt", "flac", "ends in .txt, but the format is flac"),
    ],
)
def test_a_template_extension_that_is_not_the_format_exits_2_before_the_model_loads(
    tmp_path, capsys, template, fmt, says
):
    status, _, err = cli(
        capsys,
        "separate",
        tmp_path / "missing.wav",
        "-o",
        tmp_path / "out",
        "--model",
        "no-such-model",
        "--format",
        fmt,
        "--filename",
        template,
    )
    assert status == 2 and says in err and "{ext}" in err and "no-such-model" not in err, err
    assert not (tmp_path / "out").exists()


def test_a_render_plan_names_its_filename_that_is_not_the_format(tmp_path, capsys):
    song(tmp_path / "song.wav")
    plan = tmp_path / "plan.toml"
    plan.write_text('inputs = ["song.wav"]\n\n[output]\nformat = "flac"\nfilename = "{track}.txt"\n')
    status, _, err = cli(capsys, "render", plan)
    assert status == 2 and "plan.toml:3" in err and "ends in .txt, but the format is flac" in err


# -- 14: hidden partial names stay within the filesystem's limit --------------------------


@pytest.mark.parametrize("name", ["x" * 240, "é" * 120])  # 240 bytes: the longest names pass
def test_a_long_track_name_with_sessions_is_exported_and_a_rerun_skips_it(tmp_path, capsys, name):
    src = song(tmp_path / f"{name}.wav")
    args = [
        "separate",
        src,
        "-o",
        tmp_path / "out",
        "--model",
        MODEL,
        "--stems",
        "vocals",
        "--session",
        "reaper,dawproject",
    ]
    status, out, err = cli(capsys, *args)
    assert status == 0 and "1 of 1 file(s) exported" in out, err
    folder = tmp_path / "out" / name
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{name}.dawproject", f"{name}.rpp", "vocals.wav"])
    status, out, err = cli(capsys, *args)
    assert status == 0 and "1 already complete" in out, err


def test_long_partial_names_fit_and_stay_unique():
    from stemforge.io.writing import partial_path

    a, b = (Path("/out") / ("y" * 248 + end + ".dawproject") for end in ("a", "b"))
    pa, pb = partial_path(a), partial_path(b)
    assert pa != pb and pa.parent == a.parent and pa.name.startswith(".yyy")
    assert pa.suffix == ".dawproject" and max(len(pa.name.encode()), len(pb.name.encode())) <= 255
    assert partial_path(Path("/out/vocals.wav")).name == ".vocals.partial.wav"


# -- 15: a full disk says so, and where ---------------------------------------------------


@pytest.fixture()
def small_disk(tmp_path):
    """A 384 KiB tmpfs: a real full disk (needs the right to mount, as root has)."""
    import os
    import subprocess

    folder = tmp_path / "small"
    folder.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=384k", "tmpfs", str(folder)], capture_output=True
        ).returncode
    ):
        pytest.skip("mounting a small tmpfs needs root (the write seam's test runs anyway)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])  # ogg's encoder fails without a word
def test_a_full_disk_is_reported_as_full_with_its_place(small_disk, tmp_path, fmt):
    src = song(tmp_path / "song.wav", 3.0)
    report = stemforge.export(src, small_disk / "out", model=MODEL, format=fmt)
    assert [r.status for r in report.files] == ["failed"]
    message = report.failed[0].message
    assert f"the disk holding {small_disk}" in message and "is full" in message, message
    assert not [p for p in small_disk.rglob("*") if p.is_file()]  # nothing half written


def test_a_full_disk_at_the_write_seam_says_where(tmp_path, monkeypatch):
    import errno

    from stemforge.io import writing

    class FullAfterOneBlock:
        def __init__(self, *args, **kwargs):
            self.file, self.blocks = AudioFile(*args, **kwargs), 0

        def write(self, audio):
            self.blocks += 1
            if self.blocks > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.file.write(audio)

        def __getattr__(self, name):
            return getattr(self.file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    monkeypatch.setattr(writing, "AudioFile", FullAfterOneBlock)
    src = song(tmp_path / "song.wav", 3.0)
    report = stemforge.export(src, tmp_path / "out", model=MODEL)
    message = report.failed[0].message
    assert message.startswith(f"the disk holding {tmp_path / 'out' / 'song'} is full"), message
    assert not (tmp_path / "out").exists()
    with pytest.raises(OSError, match=f"the disk holding {tmp_path} is full") as e:
        with writing.atomic_path(tmp_path / "song.rpp") as partial:
            partial.write_text("<REAPER_PROJECT")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert e.value.errno == errno.ENOSPC and not list(tmp_path.glob(".*"))


# -- 16: the collision hint fits the template ---------------------------------------------


def test_a_session_collision_does_not_ask_for_the_index_already_there(tmp_path, capsys):
    for folder in "ab":
        song(tmp_path / folder / "song.wav")
    args = [
        "separate",
        tmp_path / "a" / "song.wav",
        tmp_path / "b" / "song.wav",
        "-o",
        tmp_path / "out",
        "--model",
        MODEL,
        "--session",
        "reaper",
    ]
    status, _, err = cli(capsys, *args, "--filename", "{stem}/{index}.{ext}")
    assert status == 2 and "song.rpp" in err and "sessions are named by track" in err, err
    assert "put {index}" not in err
    status, _, err = cli(capsys, *args)  # no {index}: that is the hint
    assert status == 2 and 'put {index} in --filename, e.g. "{index:02d}-{track}' in err, err
    assert not (tmp_path / "out").exists()


# -- 17: render plans: containers and inline chains -----------------------------------------


@pytest.mark.parametrize(
    "chain, line, says",
    [
        ('[[chain]]\nplugin = "Pedalboard"\n', 2, "Pedalboard holds other plugins"),
        ('[[chain]]\nplugin = "VST3Plugin"\n', 2, "loaded by path"),
        (
            'chain = [\n  { plugin = "Gain", gain_db = -3 },  # [ a comment ]\n  { plugin = "Bogus" },\n]\n',
            4,
            "unknown plugin 'Bogus'",
        ),
        (
            'chain = [\n  { plugin = "stemforge", gains = { vocals = 0.0 } },\n\n'
            '  { plugin = "HighpassFilter", bogus = 100 },\n]\n',
            5,
            "has no parameter 'bogus'",
        ),
        ('\nchain = [{ plugin = "Gain" }, { plugin = "stemforge", stem = 3 }]\n', 3, "stem must be text"),
    ],
)
def test_plan_errors_name_the_plugin_and_the_line(tmp_path, capsys, chain, line, says):
    song(tmp_path / "song.wav")
    plan = tmp_path / "plan.toml"
    plan.write_text('inputs = ["song.wav"]\n' + chain)
    status, _, err = cli(capsys, "render", plan)
    assert status == 2 and f"plan.toml:{line}: " in err and says in err, err
    assert "did you mean Pedalboard" not in err


# -- 18: a rerun in another format removes what a killed run left -------------------------


def test_a_rerun_in_another_format_removes_a_killed_runs_partial_files(tmp_path):
    from stemforge.io.writing import partial_path

    src = song(tmp_path / "song.wav")
    folder = tmp_path / "out" / "song"
    left = [partial_path(folder / f"{stem}.wav") for stem in ("vocals", "drums")]
    left += [partial_path(folder / "song.rpp")]  # as kill -9 leaves them: hidden, half written
    for p in left[:2]:
        write(p, music(0.1), bit_depth=32)
    left[2].write_text("<REAPER_PROJECT")
    keep = write(folder / ".mine.wav", music(0.1))  # a hidden file that is not stemforge's
    report = stemforge.export(src, tmp_path / "out", model=MODEL, format="flac", sessions=["dawproject"])
    assert report.ok
    assert sorted(p.name for p in folder.iterdir()) == [
        ".mine.wav",
        "bass.flac",
        "drums.flac",
        "other.flac",
        "song.dawproject",
        "vocals.flac",
    ]
    write(left[0], music(0.1), bit_depth=32)  # a rerun that skips removes them too
    again = stemforge.export(src, tmp_path / "out", model=MODEL, format="flac", sessions=["dawproject"])
    assert [r.status for r in again.files] == ["skipped"] and not left[0].exists()
    assert keep.exists()


# -- 19: the Python API: one name where a list is meant, no booleans as counts -------------


def test_the_api_takes_one_name_for_a_list_and_refuses_booleans_as_counts(tmp_path):
    src = song(tmp_path / "song.wav")
    report = stemforge.export(src, tmp_path / "out", model=MODEL, stems="vocals", sessions="reaper")
    assert sorted(p.name for p in report.written) == ["song.rpp", "vocals.wav"]
    x = music(0.2)
    assert list(stemforge.separate(x, 44100, MODEL, stems="vocals")) == ["vocals"]
    assert stemforge.StemSplitter(MODEL, 44100, 2, "drums").stems == ["drums"]
    with pytest.raises(
        ExportError,
        match=r"unknown field\(s\) \{stem\} in --filename; use "
        r"\{ext\}, \{index\}, \{track\}",
    ):
        stemforge.render(src, [], tmp_path / "rendered", filename="{track}-{stem}.{ext}")
    assert not (tmp_path / "rendered").exists()
    for call in (
        lambda: stemforge.StemSeparator(MODEL, threads=True),
        lambda: stemforge.separate(x, 44100, MODEL, threads=True),
        lambda: stemforge.StemSplitter(MODEL, 44100, 2, threads=True),
        lambda: stemforge.StemSplitter(MODEL, 44100, True),
    ):
        with pytest.raises(ValueError, match="True"):
            call()
    for call in (
        lambda: stemforge.StemSeparator(MODEL)(x, True),
        lambda: stemforge.separate(x, True, MODEL),
        lambda: stemforge.render(src, [], tmp_path / "rendered", sample_rate=True),
    ):
        with pytest.raises(ValueError, match="sample_rate must be a whole number of Hz, got True"):
            call()


# -- 20: gains are checked where they are set ---------------------------------------------


@pytest.mark.parametrize("gain", [float("nan"), float("inf"), 1e40, -1e4, True, "0.5"])
def test_a_gain_that_is_not_a_sensible_number_is_refused_where_it_is_set(gain):
    with pytest.raises(ValueError, match=re.escape(f"gain {gain!r} for vocals: a gain is a finite")):
        stemforge.StemSeparator(MODEL, gains={"vocals": gain})
    with pytest.raises(ValueError, match="a gain is a finite number"):
        stemforge.StemSplitter(MODEL, 44100, 2, outputs={"mix": {"drums": gain}})


def test_gains_within_the_bound_still_mix(tmp_path, capsys):
    x = music(0.5)
    stems = stemforge.separate(x, 44100, MODEL, resampling="low-delay")
    y = stemforge.StemSeparator(MODEL, gains={"vocals": -1.0, "drums": 1000})(x, 44100)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, 1000 * stems["drums"] - stems["vocals"] + stems["bass"] + stems["other"], atol=2e-3)
    song(tmp_path / "song.wav")
    plan = tmp_path / "plan.toml"
    plan.write_text('inputs = ["song.wav"]\n\n[[chain]]\nplugin = "stemforge"\ngains_db = { drums = 1000.0 }\n')
    status, _, err = cli(capsys, "render", plan)
    assert status == 2 and "plan.toml:3: gain 1e+50 for drums" in err and "+60 dB" in err, err


# -- 21: --stems, --two-stems and --seconds ----------------------------------------------


@pytest.mark.parametrize(
    "args, says",
    [
        (["--stems", "vocals,"], "argument --stems: 'vocals,' holds an empty name"),
        (["--stems", "vocals,,drums"], "holds an empty name"),
        (["--stems", ""], "argument --stems: name at least one stem"),
        (["--stems", " "], "argument --stems: name at least one stem"),
        (["--two-stems", ""], "argument --two-stems: name a stem"),
    ],
)
def test_stem_lists_with_empty_names_are_refused(tmp_path, capsys, args, says):
    src = song(tmp_path / "song.wav")
    status, _, err = cli(capsys, "separate", src, "-o", tmp_path / "out", "--model", MODEL, *args)
    assert status == 2 and says in err, err
    assert not (tmp_path / "out").exists()


def test_stems_with_spaces_and_an_empty_list_from_python(tmp_path, capsys):
    src = song(tmp_path / "song.wav")
    status, _, err = cli(capsys, "separate", src, "-o", tmp_path / "out", "--model", MODEL, "--stems", "vocals, drums")
    assert status == 0, err
    assert sorted(p.name for p in (tmp_path / "out" / "song").iterdir()) == ["drums.wav", "vocals.wav"]
    with pytest.raises(ExportError, match="stems is empty"):
        stemforge.export(src, tmp_path / "out2", model=MODEL, stems=[])


@pytest.mark.parametrize("seconds", ["-1", "0", "nan", "inf", "soon"])
def test_live_seconds_must_be_a_positive_number(tmp_path, capsys, seconds):
    src = song(tmp_path / "song.wav")
    status, out, err = cli(capsys, "live", "--simulate", src, "--model", MODEL, "--seconds", seconds)
    assert status == 2 and "argument --seconds" in err and "buffers" not in out, (out, err)


def test_run_live_refuses_a_duration_that_is_not_positive():
    from stemforge.apps.live import SimulatedDevice, run_live

    device = SimulatedDevice(music(0.1), 44100, clock=lambda: 0.0, sleep=lambda s: None)
    with pytest.raises(ValueError, match="seconds must be above 0"):
        run_live(stemforge.StemSeparator(MODEL), device, seconds=-1)
