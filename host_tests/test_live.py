"""`stemforge live`: the real-time loop on a simulated device clock (no audio hardware
exists on the build machines), and the command line around it."""
from __future__ import annotations

import re
import subprocess
import sys
import time

import numpy as np
import pytest
from pedalboard.io import AudioFile

import stemforge
from conftest import music
from stemforge.apps.live import SimulatedDevice, run_live

RATE = 44100


def test_live_preset_at_256_samples_in_real_time():
    """Blocks arrive at real-time pace, and what is played is the separator's output: hop by
    hop the model's stems, or for a hop the model had not finished when it was due (a miss)
    the fallback, the input in `other`, so no vocals; or silence for an under-run. How many
    misses and under-runs a machine has is measured by bench/plugin.py, not asserted here."""
    x = music(6.0, seed=11)
    device = SimulatedDevice(x, RATE, buffer_size=256)
    sep = stemforge.StemSeparator("live", stem="vocals", threads=1, realtime=True)
    start = time.perf_counter()
    stats = run_live(sep, device)
    elapsed = time.perf_counter() - start
    assert stats.blocks == int(np.ceil(x.shape[1] / 256))
    assert stats.underruns == len(device.underrun_buffers)
    assert elapsed >= 0.95 * x.shape[1] / RATE  # paced by the clock, not as fast as possible
    reference = stemforge.StemSeparator("live", stem="vocals", threads=1)
    reference.prepare(RATE, 2)
    expected = np.concatenate([reference.process_block(device.audio[:, i:i + 256], RATE)
                               for i in range(0, x.shape[1], 256)], axis=1)
    latency, hop = sep.latency_samples, sep.model.info.hop
    expected = np.pad(expected, ((0, 0), (latency - reference.latency_samples, 0)))  # the headroom
    played = device.output[:, :expected.shape[1]]
    assert not np.any(played[:, :latency])
    fallback = unclear = 0
    for t in range(latency, played.shape[1] - hop + 1, hop):  # at the model's rate, hop by hop
        mine, model = played[:, t:t + hop], expected[:, t:t + hop]
        if any(t // 256 <= k <= (t + hop - 1) // 256 for k in device.underrun_buffers):
            unclear += 1  # silence played for an under-run
        elif np.abs(model).max() < 1e-5:
            unclear += 1  # the model's vocals are silent here: a miss would not show
        elif not np.any(mine):
            fallback += 1
        else:
            np.testing.assert_allclose(mine, model, atol=1e-5, rtol=0)
    assert fallback <= stats.misses <= fallback + unclear + 1, stats.summary()
    assert stats.latency_samples == sep.latency_samples == 1279  # 29.0 ms (README)
    assert f"{stats.misses} missed hop(s)" in stats.summary()


class SlowSeparator:
    """A processor that takes longer than a buffer lasts: the output must starve."""

    def __init__(self, seconds: float):
        self.seconds, self.latency_samples = seconds, 0

    def prepare(self, sample_rate, channels, block_size=None):
        pass

    def process_block(self, block, sample_rate):
        time.sleep(self.seconds)
        return block


def test_a_processor_slower_than_real_time_is_counted_as_under_runs():
    x = music(0.5, seed=12)
    device = SimulatedDevice(x, RATE, buffer_size=256, queue=2)
    stats = run_live(SlowSeparator(2 * 256 / RATE), device)
    assert stats.underruns > stats.blocks // 2
    assert stats.load > 1.5
    assert stats.late_blocks == stats.blocks  # each block took twice the buffer's duration
    assert f"{stats.blocks} late block(s)" in stats.summary()
    silent = [np.all(b == 0) for b in device.played]
    assert sum(silent) == stats.underruns  # the device played silence for each


def test_cli_simulate_reports_latency_and_under_runs(tmp_path):
    song = tmp_path / "song.wav"
    with AudioFile(str(song), "w", RATE, 2, bit_depth=16) as f:
        f.write(music(2.0, seed=13))
    done = subprocess.run([sys.executable, "-m", "stemforge", "live", "--gains", "vocals=0",
                           "--simulate", song], capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 3), done.stdout + done.stderr  # 3: under-runs (a busy machine)
    assert "adds 1279 samples (29.0 ms) at 44100 Hz" in done.stdout
    underruns = int(re.search(r"buffers of 256: (\d+) under-run\(s\)", done.stdout).group(1))
    assert (done.returncode == 3) == (underruns > 0)
    assert "late block(s)" in done.stdout and "missed hop(s)" in done.stdout


def test_cli_prints_the_latency_at_the_device_rate(tmp_path):
    """At 48 kHz (most interfaces) the latency printed is the one at 48 kHz: with the model
    in a worker thread given a hop, 29.5 ms (the low-delay resamplers add 0.5 ms)."""
    song = tmp_path / "song48.wav"
    with AudioFile(str(song), "w", 48000, 2, bit_depth=16) as f:
        f.write(music(1.0, seed=14))
    done = subprocess.run([sys.executable, "-m", "stemforge", "live", "--stem", "vocals",
                           "--realtime-priority", "--simulate", song],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 3), done.stdout + done.stderr
    assert "adds 1417 samples (29.5 ms) at 48000 Hz" in done.stdout
    assert "real-time priority: " in done.stdout  # granted, or why not
    assert "late block(s)" in done.stdout


def test_cli_errors_say_what_to_do(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "stemforge", "live", *map(str, args)],
                              capture_output=True, text=True, timeout=120)
    done = run("--list-devices")
    assert done.returncode == 0 and "inputs:" in done.stdout and "outputs:" in done.stdout
    done = run("--gains", "vocals:0", "--simulate", tmp_path / "x.wav")
    assert done.returncode == 1 and "STEM=GAIN" in done.stderr
    done = run("--stem", "voice", "--simulate", tmp_path / "x.wav")
    assert done.returncode == 1 and "voice" in done.stderr
    done = run("--stem", "vocals", "--input", "no such interface", "--output", "nor this")
    assert done.returncode == 1 and "--list-devices" in done.stderr


def test_cli_simulate_refuses_more_than_two_channels_clearly(tmp_path):
    six = tmp_path / "six_channels.wav"
    with AudioFile(str(six), "w", RATE, 6, bit_depth=16) as f:
        f.write(np.tile(music(0.5, seed=2)[:1], (6, 1)))
    done = subprocess.run([sys.executable, "-m", "stemforge", "live", "--stem", "vocals",
                           "--simulate", six], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "6 channels" in done.stderr and "mono or stereo" in done.stderr
    # the library says the same before any audio is played
    with pytest.raises(ValueError, match="6 channels.*mono or stereo"):
        SimulatedDevice(np.zeros((6, 1024), np.float32), RATE)
