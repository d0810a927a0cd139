"""`stemforge live`: the real-time loop on a simulated device clock (no audio hardware
exists on the build machines), and the command line around it."""
from __future__ import annotations

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


def test_live_preset_keeps_up_at_256_samples_in_real_time():
    """Blocks arrive at real-time pace; the live preset on one thread never starves the
    output, and what is played is the separator's block-by-block output."""
    x = music(6.0, seed=11)
    device = SimulatedDevice(x, RATE, buffer_size=256)
    sep = stemforge.StemSeparator("live", stem="vocals", threads=1)
    start = time.perf_counter()
    stats = run_live(sep, device)
    elapsed = time.perf_counter() - start
    assert stats.blocks == int(np.ceil(x.shape[1] / 256))
    assert stats.underruns == 0, stats.summary()
    assert elapsed >= 0.95 * x.shape[1] / RATE  # paced by the clock, not as fast as possible
    reference = stemforge.StemSeparator("live", stem="vocals", threads=1)
    reference.prepare(RATE, 2)
    expected = np.concatenate([reference.process_block(device.audio[:, i:i + 256], RATE)
                               for i in range(0, x.shape[1], 256)], axis=1)
    np.testing.assert_allclose(device.output[:, :expected.shape[1]], expected, atol=1e-5, rtol=0)
    assert stats.latency_samples == sep.latency_samples <= 1024


class SlowSeparator:
    """A processor that takes longer than a buffer lasts: the output must starve."""

    def __init__(self, seconds: float):
        self.seconds, self.latency_samples = seconds, 0

    def prepare(self, sample_rate, channels):
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
    assert done.returncode == 0, done.stdout + done.stderr
    assert "adds 1023 samples (23.2 ms) at 44100 Hz" in done.stdout
    assert "0 under-run(s)" in done.stdout
    assert "late block(s)" in done.stdout


def test_cli_prints_the_latency_at_the_device_rate(tmp_path):
    """At 48 kHz (most interfaces) the latency printed is the one at 48 kHz: the low-delay
    resamplers keep it under 25 ms (1200 samples)."""
    song = tmp_path / "song48.wav"
    with AudioFile(str(song), "w", 48000, 2, bit_depth=16) as f:
        f.write(music(1.0, seed=14))
    done = subprocess.run([sys.executable, "-m", "stemforge", "live", "--stem", "vocals",
                           "--realtime-priority", "--simulate", song],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 3), done.stdout + done.stderr
    assert "adds 1139 samples (23.7 ms) at 48000 Hz" in done.stdout
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


def test_cli_simulate_refuses_a_file_holding_nan_clearly(tmp_path):
    x = music(0.5, seed=3)
    x[1, 10000] = np.nan
    path = tmp_path / "nan.wav"
    with AudioFile(str(path), "w", RATE, 2, bit_depth=32) as f:
        f.write(x)
    done = subprocess.run([sys.executable, "-m", "stemforge", "live", "--model", "fixture-stream",
                           "--stem", "vocals", "--simulate", path], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{path} holds NaN or Inf (first at sample 10000, channel 1)" in done.stderr
    with pytest.raises(ValueError, match="holds NaN or Inf"):
        SimulatedDevice(x, RATE)


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
