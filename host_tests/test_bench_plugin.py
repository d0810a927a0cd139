"""bench/plugin.py's account of the machine: which blocks started late, and which misses and late
blocks follow such a start (so that a VM's stalls are told apart from the engine's)."""

import numpy as np

from bench.plugin import STALL, after_stall, paced


def test_after_stall_marks_the_window_after_a_late_start():
    rate, block = 44100, 441  # 10 ms blocks: a 50 ms window covers a late block and the 4 after it
    late = np.zeros(20)
    late[5] = 2 * STALL
    near = after_stall(late, block, rate, within=0.05)
    assert near.tolist() == [False] * 5 + [True] * 5 + [False] * 10
    assert not after_stall(np.full(20, STALL / 2), block, rate).any()  # under the threshold: on time


class SimulatedClock:
    """The device's time for paced(): it moves only when a call costs time or the loop sleeps,
    so what the tests assert does not depend on the machine's speed or load."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def paced_with(costs: dict, periods: int, block: int, rate: int, blocks: int):
    """paced() on a simulated clock: call b costs costs.get(b, 1 us); (start of each call, what
    paced returned)."""
    clock, starts = SimulatedClock(), []

    def call(chunk):
        starts.append(clock())
        clock.now += costs.get(len(starts) - 1, 1e-6)

    x = np.zeros((2, blocks * block), np.float32)
    result = paced(call, x, block, rate, observe=lambda: len(starts), periods=periods, clock=clock, sleep=clock.sleep)
    return np.array(starts), result


def test_paced_reports_the_blocks_a_slow_call_pushed_late():
    rate, block = 1000, 2  # 2 ms blocks; call 2 overruns by 15 blocks' time
    starts, (times, late, seen, dry) = paced_with({2: 0.03}, periods=0, block=block, rate=rate, blocks=20)
    assert len(starts) == 20
    assert times[2] >= 0.03
    assert late[3] >= 0.03 - 2 * block / rate  # the next block starts when the slow call ends
    assert seen.tolist() == list(range(1, 21))
    assert not dry.any()  # a device that never runs dry: the blocks owed follow back to back


def test_paced_starts_the_clock_again_when_the_device_has_run_dry():
    rate, block = 1000, 50  # 50 ms blocks; call 2 takes 6 blocks' time
    period = block / rate
    # a device of 2 blocks: one may start up to a block late
    starts, (_, late, _, dry) = paced_with({2: 6 * period}, periods=2, block=block, rate=rate, blocks=8)
    assert len(starts) == 8 and dry[3] and not dry[:3].any() and not dry[4:].any()
    assert late[3] >= 4 * period
    # the stream goes on from block 3 at the device's pace: the time lost is not played back
    assert np.all(np.diff(starts[3:]) >= 0.99 * period)
    assert np.all(late[4:] < 1e-9)

    # never runs dry: the blocks owed follow back to back
    starts, (_, late, _, dry) = paced_with({2: 6 * period}, periods=0, block=block, rate=rate, blocks=8)
    assert not dry.any()
    assert late[4] >= 3 * period
