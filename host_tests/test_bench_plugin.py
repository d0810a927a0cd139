"""bench/plugin.py's account of the machine: which blocks started late, and which misses and late
blocks follow such a start (so that a VM's stalls are told apart from the engine's)."""

import time

import numpy as np

from bench.plugin import STALL, after_stall, paced


def test_after_stall_marks_the_window_after_a_late_start():
    rate, block = 44100, 441  # 10 ms blocks: a 50 ms window covers a late block and the 4 after it
    late = np.zeros(20)
    late[5] = 2 * STALL
    near = after_stall(late, block, rate, within=0.05)
    assert near.tolist() == [False] * 5 + [True] * 5 + [False] * 10
    assert not after_stall(np.full(20, STALL / 2), block, rate).any()  # under the threshold: on time


def test_paced_reports_the_blocks_a_slow_call_pushed_late():
    rate, block = 1000, 2  # 2 ms blocks
    x = np.zeros((2, 20 * block), np.float32)
    calls = []

    def call(chunk):
        calls.append(chunk.shape)
        if len(calls) == 3:
            time.sleep(0.03)  # one call overruns by 15 blocks' time

    times, late, seen, dry = paced(call, x, block, rate, observe=lambda: len(calls), periods=0)
    assert calls == [(2, block)] * 20
    assert times[2] >= 0.03
    assert late[3] >= 0.03 - 2 * block / rate  # the next block starts when the slow call ends
    assert seen.tolist() == list(range(1, 21))
    assert not dry.any()  # a device that never runs dry: the blocks owed follow back to back


def test_paced_starts_the_clock_again_when_the_device_has_run_dry():
    rate, block = 1000, 50  # 50 ms blocks
    period = block / rate
    x = np.zeros((2, 8 * block), np.float32)

    def run(periods: int):
        starts = []

        def call(chunk):
            starts.append(time.perf_counter())
            if len(starts) == 3:
                time.sleep(6 * period)  # the next block starts at least 5 blocks late

        _, late, _, dry = paced(call, x, block, rate, periods=periods)
        return np.array(starts), late, dry

    starts, late, dry = run(periods=2)  # a device of 2 blocks: one may start up to a block late
    assert len(starts) == 8 and dry[3] and not dry[:3].any()
    assert late[3] >= 4 * period
    # the stream goes on from block 3 at the device's pace: the time lost is not played back
    assert np.all(np.diff(starts[3:]) >= 0.99 * period)

    starts, late, dry = run(periods=0)  # never runs dry: the blocks owed follow back to back
    assert not dry.any()
    assert late[4] >= 3 * period
