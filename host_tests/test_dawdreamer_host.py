"""DawDreamer plays the DAW: a session of stems, the separator on the mix bus, a Faust effect after it.

DawDreamer cannot call back into Python, so each test renders the upstream
graph, runs the separator block by block at the session's buffer size (as a
DAW would call a plugin), and feeds the result back through a playback
processor into the downstream effect.
"""

from __future__ import annotations

import dawdreamer as daw
import numpy as np
import pytest

from host_tests.helpers import db, music
from stemforge import StemSeparator, separate

BUFFER_SIZES = [64, 128, 512, 4096]
FAUST_BUS = 'import("stdfaust.lib"); process = par(i, 2, fi.lowpass(2, 6000) : *(0.8));'
CLICKS = [3000, 17000, 29500, 41234]


def session_stems(rate: int) -> dict:
    """Four stereo stems; the drums are loud single-sample clicks at CLICKS."""
    n = int(1.1 * rate)
    drums = np.zeros((2, n), np.float32)
    drums[:, CLICKS] = 0.9
    bed = music(1.1, rate, seed=5)
    return {
        "drums": drums,
        "bass": bed * 0.1,
        "other": np.roll(bed, 700, axis=1) * 0.05,
        "vocals": music(1.1, rate, seed=9)[::-1].copy() * 0.05,
    }


def render(rate: int, buffer_size: int, tracks: dict, effect: bool = False) -> np.ndarray:
    """Render playback processors summed on a bus (optionally into the Faust effect)."""
    engine = daw.RenderEngine(rate, buffer_size)
    graph = [(engine.make_playback_processor(name, audio), []) for name, audio in tracks.items()]
    bus = engine.make_add_processor("bus", [1.0] * len(tracks))
    graph.append((bus, list(tracks)))
    if effect:
        fx = engine.make_faust_processor("fx")
        fx.set_dsp_string(FAUST_BUS)
        graph.append((fx, ["bus"]))
    engine.load_graph(graph)
    length = next(iter(tracks.values())).shape[1]
    engine.render(length / rate)
    return np.array(engine.get_audio()[:, :length], np.float32)


def run_plugin(sep: StemSeparator, audio: np.ndarray, rate: int, buffer_size: int) -> np.ndarray:
    """Call the plugin as the DAW does, one buffer at a time, over the audio plus its latency."""
    sep.prepare(rate, audio.shape[0])
    tail = np.zeros((2, sep.latency_samples), np.float32)
    played = np.concatenate([audio, tail], axis=1)
    return np.concatenate(
        [sep.process_block(played[:, i : i + buffer_size], rate) for i in range(0, played.shape[1], buffer_size)],
        axis=1,
    )


@pytest.fixture(scope="module", params=[44100, 48000])
def session(request, stream_model):
    rate = request.param
    stems = session_stems(rate)
    mixes = {b: render(rate, b, stems) for b in BUFFER_SIZES}
    return rate, stems, mixes


def test_the_rendered_mix_does_not_depend_on_the_buffer_size(session):
    rate, stems, mixes = session
    for b in BUFFER_SIZES:
        np.testing.assert_array_equal(mixes[b], mixes[BUFFER_SIZES[0]])
    np.testing.assert_allclose(mixes[64], sum(stems.values()), atol=1e-6)


@pytest.mark.parametrize("options", [{"gains": {}}, {"gains": {"vocals": 0.0}}, {"stem": "drums"}])
def test_clicks_come_out_where_the_dry_path_has_them(session, stream_model, options):
    rate, _, mixes = session
    mix = mixes[128]
    sep = StemSeparator(stream_model, **options)
    wet_signal = run_plugin(sep, mix, rate, 128)
    latency = sep.latency_samples
    # The DAW compensates the reported latency by playing the plugin's output earlier.
    compensated = {"sep": wet_signal[:, latency : latency + mix.shape[1]]}
    wet = render(rate, 128, compensated, effect=True)
    dry = render(rate, 128, {"mix": mix}, effect=True)
    for click in CLICKS:
        window = slice(click - 100, click + 100)
        dry_peak = np.argmax(np.abs(dry[0, window]))
        assert abs(dry_peak - 100) <= 4  # the lowpass's own group delay
        assert np.argmax(np.abs(wet[0, window])) == dry_peak, f"click at {click} moved"
        assert np.argmax(np.abs(compensated["sep"][0, window])) == 100
    if options == {"gains": {}}:  # unity on every stem: the dry signal itself
        np.testing.assert_allclose(wet, dry, atol=1e-5)


def test_the_plugin_render_is_the_same_at_every_buffer_size(session, stream_model):
    rate, _, mixes = session
    renders = {}
    for b in BUFFER_SIZES:
        sep = StemSeparator(stream_model, gains={"vocals": 0.0, "drums": 1.5})
        wet = run_plugin(sep, mixes[b], rate, b)
        renders[b] = render(rate, b, {"sep": wet}, effect=True)
    latencies = set()
    for b in BUFFER_SIZES:
        sep = StemSeparator(stream_model)
        sep.prepare(rate, 2)
        sep.process_block(np.zeros((2, b), np.float32), rate)
        latencies.add(sep.latency_samples)
    assert len(latencies) == 1
    for b in BUFFER_SIZES[1:]:
        np.testing.assert_allclose(renders[b], renders[BUFFER_SIZES[0]], atol=1e-6, rtol=0)


def test_exported_stems_summed_in_the_daw_null_against_the_mix(session, models):
    rate, _, mixes = session
    mix = mixes[512]
    for name in ("fixture-stream", "fixture-window"):
        stems = separate(mix, rate, models[name])
        for b in (64, 4096):
            summed = render(rate, b, stems)
            assert db(summed - mix, mix) < -80, f"{name} stems do not null at buffer {b}"


def test_cli_export_of_a_rendered_session_nulls_and_keeps_an_impulse_in_place(tmp_path):
    """A small mixing session (stems with gains and pans, a Faust bus) rendered to a file;
    `stemforge separate` exports its stems; summed again in DawDreamer they null against
    the mix, and an impulse in the session sits at the same sample in every stem."""
    import subprocess
    import sys

    from pedalboard.io import AudioFile

    rate, impulse_at = 44100, 30000
    stems = session_stems(rate)
    stems["drums"][:, impulse_at] = 1.0
    engine = daw.RenderEngine(rate, 512)
    graph, names = [], []
    for i, (name, audio) in enumerate(stems.items()):
        graph.append((engine.make_playback_processor(name, audio), []))
        pan = engine.make_panner_processor(f"pan-{name}", "linear", [-0.4, 0.4, -0.1, 0.1][i])
        graph.append((pan, [name]))
        names.append(f"pan-{name}")
    graph.append((engine.make_add_processor("bus", [0.9, 0.8, 0.7, 1.0]), names))
    fx = engine.make_faust_processor("fx")
    fx.set_dsp_string('import("stdfaust.lib"); process = par(i, 2, fi.highpass(1, 30));')
    graph.append((fx, ["bus"]))
    engine.load_graph(graph)
    length = stems["drums"].shape[1]
    engine.render(length / rate)
    mix = np.array(engine.get_audio()[:, :length], np.float32)
    src = tmp_path / "session-mix.wav"
    with AudioFile(str(src), "w", rate, 2, bit_depth=32) as f:
        f.write(mix)

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stemforge",
            "separate",
            str(src),
            "-o",
            str(tmp_path / "out"),
            "--model",
            "fixture-stream",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    exported = {}
    for name in ("drums", "bass", "other", "vocals"):
        with AudioFile(str(tmp_path / "out" / "session-mix" / f"{name}.wav")) as f:
            exported[name] = f.read(f.frames)
        assert exported[name].shape == mix.shape
        window = np.abs(exported[name][0, impulse_at - 200 : impulse_at + 200])
        assert np.argmax(window) == 200, f"the impulse moved in {name}"
    summed = render(rate, 512, exported)
    assert db(summed - mix, mix) < -60
