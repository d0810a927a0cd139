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

    times, late, seen = paced(call, x, block, rate, observe=lambda: len(calls))
    assert calls == [(2, block)] * 20
    assert times[2] >= 0.03
    assert late[3] >= 0.03 - 2 * block / rate  # the next block starts when the slow call ends
    assert seen.tolist() == list(range(1, 21))
