"""DAW sessions written by `stemforge separate --session`: they validate against the official
DAWproject schema (lxml) and parse back with a real RPP parser, with the tracks and files
they should have."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import rpp
from lxml import etree
from pedalboard.io import AudioFile

from host_tests.helpers import STEMS, music
from stemforge.errors import ExportError
from stemforge.io.sessions import DAWPROJECT_SCHEMAS, SessionTrack, check_dawproject_xml, write_session

SCHEMAS = DAWPROJECT_SCHEMAS  # the project's copy of the official schema


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("session")
    src = separate_with_sessions(tmp, "my song", 2.0, "dawproject,reaper")
    return src, tmp / "out" / "my song"


def separate_with_sessions(folder: Path, name: str, seconds: float, sessions: str) -> Path:
    """Write `name`.wav (48 kHz, 24 bits) and run `stemforge separate --session` on it into folder/out."""
    src = folder / f"{name}.wav"
    with AudioFile(str(src), "w", 48000, 2, bit_depth=24) as f:
        f.write(music(seconds, 48000))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stemforge",
            "separate",
            str(src),
            "-o",
            str(folder / "out"),
            "--model",
            "fixture-stream",
            "--session",
            sessions,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return src


def test_dawproject_validates_against_the_official_schema(exported):
    src, folder = exported
    archive = zipfile.ZipFile(folder / "my song.dawproject")
    assert set(archive.namelist()) == {"project.xml", "metadata.xml"}
    for name, xsd in (("project.xml", "Project.xsd"), ("metadata.xml", "MetaData.xsd")):
        schema = etree.XMLSchema(etree.parse(str(SCHEMAS / xsd)))
        doc = etree.fromstring(archive.read(name))
        assert schema.validate(doc), schema.error_log
    project = etree.fromstring(archive.read("project.xml"))
    tracks = {t.get("name"): t for t in project.iter("Track") if t.get("name") != "Master"}
    assert list(tracks) == ["my song", *STEMS]
    assert tracks["my song"].find("Channel/Mute").get("value") == "true"
    assert all(tracks[s].find("Channel/Mute").get("value") == "false" for s in STEMS)
    for clip in project.iter("Clip"):
        assert float(clip.get("time")) == 0.0 and float(clip.get("duration")) == 2.0
        ref = folder / clip.find("Audio/File").get("path")
        assert ref.resolve().is_file()
    files = {Path(f.get("path")).name for f in project.iter("File")}
    assert files == {"my song.wav"} | {f"{s}.wav" for s in STEMS}


def test_reaper_project_parses_back_with_aligned_items(exported):
    src, folder = exported
    project = rpp.loads((folder / "my song.rpp").read_text())
    tracks = project.findall("TRACK")
    assert [t.find("NAME")[1] for t in tracks] == ["my song", *STEMS]
    assert [t.find("MUTESOLO")[1] for t in tracks] == ["1", "0", "0", "0", "0"]
    for t in tracks:
        item = t.find("ITEM")
        assert float(item.find("POSITION")[1]) == 0.0 and float(item.find("LENGTH")[1]) == 2.0
        assert (folder / item.find("SOURCE").find("FILE")[1]).resolve().is_file()
    assert project.find("SAMPLERATE")[1] == "48000"


def test_unknown_session_format_is_refused_before_any_work(tmp_path, cli_here):
    result = cli_here("separate", "x.wav", "--model", "fixture-stream", "--session", "logic", cwd=tmp_path)
    assert result.returncode == 2 and "unknown --session logic" in result.stderr


def test_the_project_carries_the_official_schema_with_its_licence():
    for name in ("Project.xsd", "MetaData.xsd", "LICENSE"):
        assert (SCHEMAS / name).is_file(), name
    assert "MIT License" in (SCHEMAS / "LICENSE").read_text()


def test_a_session_that_breaks_the_schema_is_refused_not_written(tmp_path):
    with pytest.raises(ExportError, match="Project.xsd"):
        check_dawproject_xml('<?xml version="1.0"?><Project version="1.0"><Bogus/></Project>', "Project.xsd")
    src = tmp_path / "song.wav"
    with AudioFile(str(src), "w", 44100, 2) as f:
        f.write(music(0.1, 44100))
    # XML 1.0 cannot carry control characters, which a file name may hold
    bad = tmp_path / "song\x01.dawproject"
    with pytest.raises(ExportError, match="control characters.*--session reaper"):
        write_session("dawproject", bad, [SessionTrack("song\x01", src, muted=True)], 44100, 2, 4410)
    assert not bad.exists()


@pytest.mark.parametrize("name", ['it\'s a "mix" `live`', "only `backticks` and 'single'", "a line\nbreak"])
def test_reaper_keeps_the_original_mix_whatever_quotes_its_name_holds(tmp_path, name):
    """REAPER has no escape in strings: a path holding ", ' and ` cannot be written, nor one
    holding a line break (REAPER reads line by line: "closing quote not found"). The
    session must still play the original mix (through a link beside the session)."""
    src = separate_with_sessions(tmp_path, name, 0.5, "reaper")
    folder = tmp_path / "out" / name
    project = rpp.loads((folder / f"{name}.rpp").read_text())
    files = [folder / t.find("ITEM").find("SOURCE").find("FILE")[1] for t in project.findall("TRACK")]
    assert len(files) == 5 and all(f.is_file() for f in files), files
    assert "\n" not in project.findall("TRACK")[0].find("NAME")[1]
    assert files[0].read_bytes() == src.read_bytes()  # the muted first track: the mix
    assert [f.name for f in files[1:]] == [f"{s}.wav" for s in STEMS]
