"""Scripted renders: stemforge.render from Python and `stemforge render PLAN.toml` as a subprocess."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pedalboard
import pytest
from pedalboard import Compressor, HighpassFilter
from pedalboard.io import AudioFile

import stemforge
from host_tests.helpers import music

ACAPELLA = """inputs = ["song.wav"]

[[chain]]
plugin = "HighpassFilter"
cutoff_frequency_hz = 100

[[chain]]
plugin = "stemforge"
model = "fixture-stream"
stem = "vocals"

[[chain]]
plugin = "Compressor"
threshold_db = -18
ratio = 3

[output]
folder = "rendered"
filename = "{track}-acapella.{ext}"
"""
KARAOKE = """inputs = ["album"]
recursive = true

[[chain]]
plugin = "stemforge"
model = "fixture-stream"
gains = { vocals = 0.0 }

[output]
folder = "karaoke"
format = "wav"
bit_depth = 24
sample_rate = 48000
"""
REBALANCE = """inputs = ["song.wav"]

[[chain]]
plugin = "stemforge"
model = "fixture-stream"
gains_db = { drums = 3.0, vocals = -6.0 }

[output]
folder = "rebalanced"
format = "flac"
"""


def run(plan_text: str, folder, name="plan.toml"):
    (folder / name).write_text(plan_text)
    return run_plan(folder, name)


def run_plan(folder, name="plan.toml"):
    return subprocess.run(
        [sys.executable, "-m", "stemforge", "render", name], capture_output=True, text=True, cwd=folder, timeout=300
    )


def refused(cli_here, plan_text: str, folder, name="plan.toml"):
    """run(), for a plan refused before any audio: `stemforge render` in this process (cli_here)."""
    (folder / name).write_text(plan_text)
    return cli_here("render", name, cwd=folder)


@pytest.fixture()
def workspace(tmp_path):
    with AudioFile(str(tmp_path / "song.wav"), "w", 44100, 2, bit_depth=32) as f:
        f.write(music(1.5))
    (tmp_path / "album" / "disc2").mkdir(parents=True)
    for name in ("album/one.wav", "album/disc2/two.wav"):
        with AudioFile(str(tmp_path / name), "w", 44100, 2, bit_depth=32) as f:
            f.write(music(1.0, seed=len(name)))
    return tmp_path


def read(path):
    with AudioFile(str(path)) as f:
        return f.samplerate, f.read(f.frames)


def test_the_user_guide_plans_render_what_they_say(workspace):
    mix = read(workspace / "song.wav")[1]
    assert run(ACAPELLA, workspace).returncode == 0
    expected = stemforge.Chain(
        [
            HighpassFilter(100),
            stemforge.StemSeparator("fixture-stream", stem="vocals"),
            Compressor(threshold_db=-18, ratio=3),
        ]
    )(mix, 44100)
    rate, acapella = read(workspace / "rendered" / "song-acapella.wav")
    assert rate == 44100 and acapella.shape == mix.shape
    np.testing.assert_allclose(acapella, expected, atol=1e-4)  # 24-bit file

    result = run(KARAOKE, workspace)
    assert result.returncode == 0, result.stderr
    for name in ("one", "two"):
        rate, audio = read(workspace / "karaoke" / f"{name}.wav")
        assert rate == 48000 and audio.shape == (2, 48000)

    assert run(REBALANCE, workspace).returncode == 0
    stems = stemforge.separate(mix, 44100, "fixture-stream")
    expected = sum(
        stems[s] * g for s, g in (("drums", 10 ** (3 / 20)), ("bass", 1.0), ("other", 1.0), ("vocals", 10 ** (-6 / 20)))
    )
    rate, rebalanced = read(workspace / "rebalanced" / "song.flac")
    np.testing.assert_allclose(rebalanced, expected, atol=1e-4)


def test_render_from_python(workspace):
    written = stemforge.render(
        workspace / "song.wav",
        [stemforge.StemSeparator("fixture-stream", stem="bass")],
        workspace / "py",
        filename="{track}-bass.{ext}",
        sample_rate=22050,
    )
    assert [p.name for p in written] == ["song-bass.wav"]
    rate, audio = read(written[0])
    assert rate == 22050 and audio.shape == (2, int(1.5 * 22050))


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda t: t.replace('"Compressor"', '"Compresor"'),
            "plan.toml:12: unknown plugin 'Compresor' (did you mean Compressor?)",
        ),
        (
            lambda t: t.replace("ratio = 3", "ratio = 3\nknee_db = 2"),
            "plan.toml:16: Compressor has no parameter 'knee_db'",
        ),
        (lambda t: t.replace('stem = "vocals"', 'stem = "voice"'), "plan.toml:7: unknown stem 'voice'"),
        (
            lambda t: t.replace('stem = "vocals"', "gains = { vocals = 0.0 }\ngains_db = { drums = 0.0 }"),
            "plan.toml:11: give gains (linear) or gains_db (decibels), not both",
        ),
        (
            lambda t: t.replace(
                '"Compressor"\nthreshold_db = -18\nratio = 3',
                '"Convolution"\nimpulse_response_filename = "no-such-ir.wav"',
            ),
            "plan.toml:12: bad value for Convolution (impulse_response_filename): Unable to load impulse",
        ),
        (lambda t: t.replace('"song.wav"', '"nosong.wav"'), "plan.toml:1: no such input file"),
        (
            lambda t: t.replace('folder = "rendered"', 'folder = "rendered"\nformat = "wma"'),
            "plan.toml:17: unknown format 'wma'",
        ),
    ],
)
def test_a_bad_plan_fails_before_any_audio_naming_the_line(workspace, edit, message, cli_here):
    result = refused(cli_here, edit(ACAPELLA), workspace)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (workspace / "rendered").exists()


@pytest.mark.parametrize(
    "chain, stage",
    [
        (
            'plugin = "HighpassFilter"\ncutoff_frequency_hz = -100',
            "stage 1 of the chain (pedalboard.Highpass cutoff_frequency_hz=-100) returned NaN or Inf",
        ),
        (
            'plugin = "stemforge"\nmodel = "fixture-stream"\n[[chain]]\nplugin = "Gain"\ngain_db = 1000',
            "stage 2 of the chain (pedalboard.Gain gain_db=1000) returned NaN or Inf",
        ),
    ],
)
def test_a_stage_that_returns_nan_or_inf_fails_the_file_naming_the_stage(workspace, chain, stage):
    """Out-of-range parameters that pedalboard accepts blow the audio up: the file fails,
    naming the stage, and nothing is written (no NaN or Inf file, no partial file)."""
    result = run(f'inputs = ["song.wav"]\n[[chain]]\n{chain}\n[output]\nfolder = "rendered"\n', workspace)
    assert result.returncode == 1 and stage in result.stderr, result.stderr
    assert not (workspace / "rendered").exists()


def test_render_above_0_dbfs_to_an_integer_format_warns(workspace):
    gain = [pedalboard.Gain(gain_db=20.0)]
    with pytest.warns(UserWarning, match=r"song.wav: clipped at 0 dBFS: song.flac peaks at .*flac 24-bit"):
        stemforge.render(workspace / "song.wav", gain, workspace / "flac", format="flac")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 32-bit float WAV keeps it: nothing to say
        stemforge.render(workspace / "song.wav", gain, workspace / "wav")


def test_a_plan_is_utf8_with_or_without_a_byte_order_mark(workspace):
    (workspace / "plan.toml").write_bytes(b"\xef\xbb\xbf" + ACAPELLA.encode())  # as Notepad saves it
    result = run_plan(workspace)
    assert result.returncode == 0 and (workspace / "rendered" / "song-acapella.wav").is_file(), result.stderr
    (workspace / "plan.toml").write_bytes(
        ACAPELLA.replace("\n\n[[chain]]", "\n# caf\xe9\n[[chain]]", 1).encode("latin-1")
    )
    result = run_plan(workspace)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "plan.toml:2: the plan is not UTF-8 text (byte 0xe9); save it as UTF-8" in result.stderr


def test_a_vst3_parameter_the_plugin_lacks_is_named(workspace):
    try:
        bundle = stemforge.plugin_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    plan = (
        f'inputs = ["song.wav"]\n\n[[chain]]\nplugin = "{bundle}"\nparameters = {{ bogus = 1 }}\n'
        '\n[output]\nfolder = "rendered"\n'
    )
    result = run(plan, workspace)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "plan.toml:5: stemforge.vst3 has no parameter 'bogus'; it takes " in result.stderr
    result = run(plan.replace("bogus = 1", 'stem = "voice"'), workspace)
    assert result.returncode == 2 and "plan.toml:5: stemforge.vst3 parameter stem = 'voice': " in result.stderr
    assert not (workspace / "rendered").exists()


def test_render_never_overwrites_its_inputs(workspace, cli_here):
    song = workspace / "album" / "one.wav"
    before = song.read_bytes()
    sep = stemforge.StemSeparator("fixture-stream", stem="vocals")
    with pytest.raises(ValueError, match="would overwrite the input"):
        stemforge.render(song, [sep], workspace / "album", overwrite=True)
    plan = (
        KARAOKE.replace('folder = "karaoke"', 'folder = "album"\noverwrite = true')
        .replace("recursive = true", "recursive = false")
        .replace("sample_rate = 48000\n", "")
    )
    result = refused(cli_here, plan, workspace)
    assert result.returncode == 2 and "would overwrite the input" in result.stderr, result.stderr
    assert song.read_bytes() == before


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace('stem = "vocals"', "gains_db = 3"), "plan.toml:10: gains_db must be a table"),
        (lambda t: t.replace('stem = "vocals"', "gains = [0, 1]"), "plan.toml:10: gains must be a table"),
        (lambda t: t.replace('folder = "rendered"', "folder = 3"), "plan.toml:18: folder must be text"),
        (lambda t: t.replace('inputs = ["song.wav"]', "inputs = 3"), "plan.toml:1: inputs must be text"),
        (lambda t: 'output = "out"\n' + t.split("[output]")[0], "output must be a table"),
        (lambda t: t.replace('plugin = "Compressor"', "plugin = 5"), 'plugin = "..." (a name in quotes)'),
        (lambda t: 'recursive = "yes"\n' + t, "plan.toml:1: recursive must be true or false"),
        (
            lambda t: t.replace('folder = "rendered"', 'folder = "rendered"\noverwrite = "no"'),
            "plan.toml:19: overwrite must be true or false",
        ),
        (
            lambda t: t.replace('folder = "rendered"', 'folder = "rendered"\nbit_depth = "24"'),
            "plan.toml:19: bit_depth must be a whole number, got '24'",
        ),
        (lambda t: t.replace("ratio = 3", 'ratio = "high"'), "plan.toml:15: Compressor.ratio = 'high'"),
        (
            lambda t: t.replace("ratio = 3", "ratio = 0.5"),
            "plan.toml:15: Compressor.ratio = 0.5: Compressor ratio must be",
        ),
        (lambda t: t.replace('"song.wav"', '"song.wav", "broken.wav"'), "broken.wav: cannot read it as audio"),
    ],
)
def test_a_plan_of_the_wrong_types_fails_before_any_audio_naming_the_key(workspace, edit, message, cli_here):
    (workspace / "broken.wav").write_bytes(b"RIFF not really a wave file")
    result = refused(cli_here, edit(ACAPELLA), workspace)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (workspace / "rendered").exists() and not (workspace / "out").exists()


def test_render_says_what_it_skipped_and_shows_progress(workspace):
    assert run(ACAPELLA, workspace).returncode == 0
    again = run(ACAPELLA, workspace)
    assert again.returncode == 0
    assert "exists, skipped" in again.stdout and "0 file(s) rendered, 1 skipped" in again.stdout
    first = run(ACAPELLA.replace('folder = "rendered"', 'folder = "fresh"'), workspace)
    assert "song.wav: 100%" in first.stdout and "1 file(s) rendered" in first.stdout
