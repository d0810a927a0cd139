"""Issue 23, point 3: one named resampling policy per use, chosen in `stemforge.core.policy`.

REALTIME (block by block for a host or a device: StemSeparator, latency_of, realtime_headroom,
`render` chains, the plugin) and OFFLINE (whole files: separate, StemSplitter, export,
`stemforge separate`). Each public path, run at 48 kHz against the 44.1 kHz `live` preset
(where the two policies differ), gives what an explicit resampling= of its use's policy
gives, and not what the other policy gives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile

import stemforge
from host_tests.helpers import MODELS, music, run_cli
from stemforge.core.contract import RESAMPLING as CONTRACT
from stemforge.core.pipeline import (
    Pipeline,
    host_latency,
    latency_of,
    realtime_headroom,
    resampler_holdbacks,
    resampler_recipes,
)
from stemforge.core.policy import OFFLINE, REALTIME, policy_for
from stemforge.core.resample import RESAMPLING

RATE = 48000  # not the model's rate: both resamplers run


def other(policy: str) -> str:
    (name,) = set(RESAMPLING) - {policy}
    return name


def differs(a: np.ndarray, b: np.ndarray) -> bool:
    """More than float noise apart: what two resamplers do differently, not summation order."""
    return float(np.abs(a - b).max()) > 1e-4


def write_float_wav(path: Path, x: np.ndarray, rate: int) -> Path:
    with AudioFile(str(path), "w", rate, x.shape[0], bit_depth=32) as f:
        f.write(x)
    return path


def read(path: Path) -> np.ndarray:
    with AudioFile(str(path)) as f:
        assert f.samplerate == RATE
        return f.read(f.frames)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return music(0.5, RATE, 2, seed=11)


def test_the_two_policies_are_the_contracts_and_differ_as_documented(live):
    """Both faces read the names from contract.json (the VST3 engine its realtime_policy);
    the real-time policy holds back less (latency), the offline one filters with soxr HQ."""
    assert (policy_for("realtime"), policy_for("offline")) == (REALTIME, OFFLINE)
    assert (REALTIME, OFFLINE) == (CONTRACT["realtime_policy"], CONTRACT["offline_policy"])
    assert {REALTIME, OFFLINE} == set(RESAMPLING)
    with pytest.raises(ValueError, match="use must be one of 'realtime', 'offline'"):
        policy_for("live")
    for policy in (REALTIME, OFFLINE):
        q_in, q_out = resampler_recipes(RATE, live.sample_rate, policy)
        assert q_in == CONTRACT["policies"][policy]["in"]
        assert q_out in CONTRACT["policies"][policy]["out"]
    assert resampler_recipes(RATE, live.sample_rate, OFFLINE) == ("HQ", "HQ")
    h_rt, h_off = (sum(resampler_holdbacks(RATE, live.sample_rate, p)) for p in (REALTIME, OFFLINE))
    assert h_rt < h_off
    assert latency_of(live.info, RATE, REALTIME) < latency_of(live.info, RATE, OFFLINE)


def test_stem_separator_and_the_latency_functions_take_the_realtime_policy(live, x):
    sep = stemforge.StemSeparator(live, stem="vocals")
    assert sep.resampling == REALTIME
    y = sep(x, RATE)
    np.testing.assert_array_equal(y, stemforge.StemSeparator(live, stem="vocals", resampling=REALTIME)(x, RATE))
    assert differs(y, stemforge.StemSeparator(live, stem="vocals", resampling=other(REALTIME))(x, RATE))
    # the latency it reports is latency_of's default (what `stemforge models list` prints)
    assert sep.latency_samples == latency_of(live.info, RATE) == latency_of(live.info, RATE, REALTIME)
    assert latency_of(live.info, RATE) != latency_of(live.info, RATE, other(REALTIME))
    # real time with the model in a worker thread (`stemforge live`): the same policy
    rt = stemforge.StemSeparator(live, stem="vocals", realtime=True)
    rt.prepare(RATE, 2, block_size=512)
    try:
        headroom = realtime_headroom(live.info, RATE, 512)
        assert headroom == realtime_headroom(live.info, RATE, 512, resampling=REALTIME)
        assert headroom != realtime_headroom(live.info, RATE, 512, resampling=other(REALTIME))
        assert rt.latency_samples == latency_of(live.info, RATE, REALTIME, headroom=headroom)
    finally:
        rt.reset()


def test_the_lower_level_latency_functions_have_no_default_of_their_own(live):
    """host_latency, resampler_holdbacks and resampler_recipes describe a stream whose policy
    the caller chose: without it they refuse, so no default can disagree with `policy`."""
    delay = 256
    for call in (
        lambda: host_latency(delay, RATE, live.sample_rate),
        lambda: resampler_holdbacks(RATE, live.sample_rate),
        lambda: resampler_recipes(RATE, live.sample_rate),
    ):
        with pytest.raises(TypeError, match="resampling"):
            call()
    for policy in (REALTIME, OFFLINE):
        engine_delay = latency_of(live.info, live.sample_rate)  # at the model's rate: the engine's own
        assert host_latency(engine_delay, RATE, live.sample_rate, policy) == latency_of(live.info, RATE, policy)


def test_separate_and_stem_splitter_take_the_offline_policy(live, x):
    stems = stemforge.separate(x, RATE, live)
    explicit = stemforge.separate(x, RATE, live, resampling=OFFLINE)
    realtime = stemforge.separate(x, RATE, live, resampling=REALTIME)
    for s in live.stems:
        np.testing.assert_array_equal(stems[s], explicit[s])
    assert differs(stems["vocals"], realtime["vocals"])
    # separate is StemSplitter over the whole input; pushed in blocks, the same stems
    splitter = stemforge.StemSplitter(live, RATE, 2)
    parts = [splitter.push(x[:, i : i + 1000]) for i in range(0, x.shape[1], 1000)] + [splitter.flush()]
    for s in live.stems:
        np.testing.assert_allclose(np.concatenate([p[s] for p in parts], axis=1), stems[s], atol=1e-6, rtol=0)
    # a Pipeline of its own is StemSplitter's: offline
    pipe = Pipeline(live, RATE, 2, np.eye(len(live.stems), dtype=np.float32), np.zeros(len(live.stems)))
    assert pipe.resampling == OFFLINE
    assert pipe.latency == latency_of(live.info, RATE, OFFLINE)


def test_separate_is_the_offline_sum_and_the_processors_the_realtime_one(live, x):
    """The documented difference: at 48 kHz separate(x) is not StemSeparator(stem=s)(x); each
    is its own policy's path, and both sets of stems add up to the input (residual "auto")."""
    offline = stemforge.separate(x, RATE, live)
    realtime = stemforge.separate(x, RATE, live, resampling=REALTIME)
    for s in live.stems:
        np.testing.assert_allclose(stemforge.StemSeparator(live, stem=s)(x, RATE), realtime[s], atol=1e-6, rtol=0)
    np.testing.assert_allclose(sum(offline.values()), x, atol=1e-5, rtol=0)
    np.testing.assert_allclose(sum(realtime.values()), x, atol=1e-5, rtol=0)
    assert differs(offline["vocals"], realtime["vocals"])


def test_export_and_the_separate_command_take_the_offline_policy(live, x, tmp_path):
    src = write_float_wav(tmp_path / "song.wav", x, RATE)
    x = read(src)
    expected = stemforge.separate(x, RATE, live, resampling=OFFLINE)["vocals"]
    report = stemforge.export(src, tmp_path / "lib", model=live, stems=["vocals"], bit_depth=32)
    assert report.ok
    (written,) = report.written
    np.testing.assert_allclose(read(written), expected, atol=1e-6, rtol=0)
    result = run_cli(
        "separate", src, "-o", tmp_path / "cli", "--model", MODELS / "live.ts", "--stems", "vocals", "--bit-depth", "32"
    )
    assert result.returncode == 0, result.stderr
    (written,) = (tmp_path / "cli").rglob("vocals.wav")
    y = read(written)
    np.testing.assert_allclose(y, expected, atol=1e-6, rtol=0)
    assert differs(y, stemforge.separate(x, RATE, live, resampling=REALTIME)["vocals"])


def test_render_runs_its_stem_separators_with_the_realtime_policy(live, x, tmp_path):
    """A render chain holds StemSeparator processors, as a host would: their (real-time)
    policy, the samples the plugin gives on a bounce."""
    src = write_float_wav(tmp_path / "song.wav", x, RATE)
    x = read(src)
    (written,) = stemforge.render(src, [stemforge.StemSeparator(live, stem="vocals")], tmp_path / "out", bit_depth=32)
    y = read(written)
    np.testing.assert_allclose(
        y, stemforge.StemSeparator(live, stem="vocals", resampling=REALTIME)(x, RATE), atol=1e-6, rtol=0
    )
    assert differs(y, stemforge.StemSeparator(live, stem="vocals", resampling=OFFLINE)(x, RATE))
