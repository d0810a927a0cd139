"""`stemforge sections`: the songs of a long rendered singing stream with known truth,
through the CLI; and the rules that turn probabilities into songs."""

from __future__ import annotations

import csv
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile

from bench.streams import Part, render_stream
from stemforge.apps.sections import FeatureStream, Rules, find_songs, pitch_frame, pitch_track
from stemforge.io.sessions import DAWPROJECT_SCHEMAS

RATE = 44100
PARTS = [
    Part("talk", 30),
    Part("song", 100),
    Part("silence", 8),
    Part("bgm-talk", 30),
    Part("song", 150, "ballad"),
    Part("talk", 25),
    Part("song", 210, "rock"),
    Part("silence", 6),
    Part("song", 200),
    Part("talk", 20),
]


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    """12.6 minutes: talk, a pop song, silence, talk over background music, a ballad with
    a quiet middle, talk, then two songs back to back (3.5 and 3.3 min, a 6 s pause)."""
    folder = tmp_path_factory.mktemp("stream")
    audio, truth = render_stream(PARTS, seed=1)
    path = folder / "stream.flac"
    with AudioFile(str(path), "w", RATE, 2, bit_depth=16) as f:
        f.write(audio)
    out = folder / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stemforge",
            "sections",
            path,
            "-o",
            out,
            "--write",
            "labels,csv,cue,reaper,dawproject",
            "--cut",
            "--format",
            "flac",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    return path, truth, out, done.stdout


def found(out: Path):
    with open(out / "stream.songs.csv") as f:
        return [(float(r["start_s"]), float(r["end_s"])) for r in csv.DictReader(f)]


@pytest.mark.slow
def test_every_song_is_found_with_its_boundaries_within_2_s(stream):
    _, truth, out, stdout = stream
    songs = found(out)
    assert len(songs) == len(truth), f"found {songs}, truth {truth}"
    for (start, end), (true_start, true_end) in zip(songs, truth):
        assert abs(start - true_start) <= 2.0 and abs(end - true_end) <= 2.0, (songs, truth)
    assert f"{len(truth)} song(s) in stream.flac" in stdout


@pytest.mark.slow
def test_labels_cue_and_daw_markers_say_the_same(stream, tmp_path):
    path, _, out, _ = stream
    songs = found(out)
    labels = [line.split("\t") for line in (out / "stream.labels.txt").read_text().splitlines()]
    assert [(float(a), float(b)) for a, b, _ in labels] == songs
    assert [name for _, _, name in labels] == [f"song {i}" for i in range(1, len(songs) + 1)]
    cue = (out / "stream.cue").read_text()
    assert 'FILE "stream.flac" WAVE' in cue
    indexes = [line.split()[-1] for line in cue.splitlines() if "INDEX 01" in line]
    for (start, _), msf in zip(songs, indexes):
        m, s, frames = map(int, msf.split(":"))
        assert m * 60 + s + frames / 75 == pytest.approx(start, abs=1 / 75)
    rpp = (out / "stream.rpp").read_text()
    for i, (start, end) in enumerate(songs, 1):
        assert f'MARKER {i} {start!r} "song {i}" 1' in rpp and f'MARKER {i} {end!r} "" 1' in rpp
    from lxml import etree

    with zipfile.ZipFile(out / "stream.dawproject") as z:
        project = etree.fromstring(z.read("project.xml"))
    etree.XMLSchema(etree.parse(str(DAWPROJECT_SCHEMAS / "Project.xsd"))).assertValid(project)
    times = [float(m.get("time")) for m in project.iter("Marker")]
    assert times == [t for song in songs for t in song]


@pytest.mark.slow
def test_cut_writes_each_song_as_its_own_file_with_its_times_in_the_name(stream):
    path, _, out, _ = stream
    songs = found(out)
    files = sorted(out.glob("stream song *.flac"))
    assert len(files) == len(songs)
    with AudioFile(str(path)) as f:
        for file, (start, end) in zip(files, songs):
            assert f"{int(start) // 60:02d}m" in file.name
            with AudioFile(str(file)) as cut:
                audio = cut.read(cut.frames)
            f.seek(int(start * RATE))
            # The same samples, to within one 16-bit step (pedalboard scales float to int
            # by 32767 when writing and reads int by 32768).
            np.testing.assert_allclose(audio, f.read(audio.shape[1]), atol=2 / 32768, rtol=0)
            assert audio.shape[1] == int(end * RATE) - int(start * RATE)
    assert not list(out.glob(".*partial"))


def test_rules_merge_dips_keep_long_runs_apart_and_extend_edges():
    def p(*spans, n=1200):
        out = np.full(n, 0.05)
        for a, b, v in spans:
            out[a:b] = v
        return out

    # A 15 s dip inside a song merges; a 40 s gap does not.
    songs = find_songs(p((100, 200, 0.9), (215, 300, 0.9), (340, 420, 0.9)))
    assert [(s.start, s.end) for s in songs] == [(100, 300), (340, 420)]
    # An intro at 0.45 (the band, no voice yet) is kept: edges extend while >= 0.4.
    songs = find_songs(p((80, 100, 0.45), (100, 200, 0.9)), Rules(edge_smooth=0))
    assert songs[0].start <= 85
    # Two songs back to back (4 + 3.5 min, a 8 s pause where the music stops, and a
    # 12 s instrumental dip inside the second one): the cap keeps them apart at the pause.
    prob = p((100, 340, 0.9), (348, 470, 0.9), (482, 560, 0.9))
    quiet = np.zeros(len(prob), bool)
    quiet[340:348] = True
    songs = find_songs(prob, Rules(), quiet)
    assert [(s.start, s.end) for s in songs] == [(100, 340), (348, 560)]
    # Never merged beyond max_song.
    assert len(find_songs(prob, Rules(max_song=120))) == 3


def test_features_keep_at_most_a_second_of_audio_in_memory():
    rng = np.random.default_rng(0)
    fs = FeatureStream(RATE)
    for _ in range(40):
        block = rng.standard_normal((2, 30000)).astype(np.float32)
        fs.push(block, 0.5 * block)
        assert len(fs._mix) < RATE
    assert len(fs.rows) == 40 * 30000 // RATE


def sung(f0: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    """A held note: twelve harmonics with a vowel-like tilt and a 5 Hz, +-2 % vibrato."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * f0 * (t - 0.02 / (2 * np.pi * 5) * np.cos(2 * np.pi * 5 * t))
    return sum(np.sin(k * phase) / k**0.8 * (1.5 if k in (3, 4) else 1.0) for k in range(1, 13))


@pytest.mark.parametrize("rate", [44100, 48000, 96000, 192000])
def test_pitch_frames_are_seconds_and_read_a_voice_right_at_any_rate(rate):
    frame, hop = pitch_frame(rate)
    assert frame / rate == pytest.approx(2048 / 44100, rel=1e-3) and hop == frame // 2
    noise = np.random.default_rng(rate).standard_normal(2 * rate)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero on the way
        voice_f0 = pitch_track(sung(205.0, rate, 2.0), rate)
        noise_f0 = pitch_track(noise, rate)
    assert np.mean(voice_f0 > 0) > 0.95
    assert np.median(voice_f0[voice_f0 > 0]) == pytest.approx(205.0, rel=0.03)
    assert np.all(np.abs(voice_f0[voice_f0 > 0] / 205.0 - 1) < 0.05)  # no octave errors
    assert np.mean(noise_f0 > 0) < 0.05  # noise is not voiced


def test_voiced_share_of_noise_and_voice_does_not_depend_on_the_rate():
    shares = {}
    for rate in (44100, 192000):
        for name, x in (
            ("noise", 0.1 * np.random.default_rng(3).standard_normal(4 * rate)),
            ("voice", 0.1 * sung(205.0, rate, 4.0)),
        ):
            stream = FeatureStream(rate)
            stream.push(np.stack([x, x]), np.stack([x, x]))  # mix = vocals: a voice alone
            shares[name, rate] = stream.features()[:, 1].mean()
    assert shares["noise", 44100] < 0.05 and shares["noise", 192000] < 0.05
    assert shares["voice", 44100] > 0.9 and shares["voice", 192000] > 0.9


def test_errors_are_clear(tmp_path, cli_here):
    def run(*args):
        return cli_here("sections", *args)

    done = run(tmp_path / "missing.wav", "-o", tmp_path / "out")
    assert done.returncode == 1 and "no such file" in done.stderr
    song = tmp_path / "s.wav"
    with AudioFile(str(song), "w", RATE, 2) as f:
        f.write(np.zeros((2, RATE), np.float32))
    done = run(song, "--write", "labels,midi", "-o", tmp_path / "out")
    assert done.returncode == 1 and "midi" in done.stderr and not (tmp_path / "out").exists()
