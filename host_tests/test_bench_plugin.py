"""bench/plugin.py's account of the machine: which blocks started late, and which misses and late
blocks follow such a start (so that a VM's stalls are told apart from the engine's)."""

import numpy as np

from bench.plugin import STALL, RealTimeRow, after_stall, paced, plugin_margin, row_cells, stolen_seconds


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


def test_the_plugins_rows_are_the_headrooms_its_margin_offers():
    """--headroom in model samples: the plugin's row where it is 1 or 2 whole hops (its margin),
    none where the plugin offers no such margin."""
    hop = 256
    assert [plugin_margin(h, hop) for h in (None, 256, 512, 384, 768, 64)] == [1, 1, 2, None, None, None]


def test_a_row_says_the_cpu_time_the_hypervisor_took():
    """The machine's cell ends with the CPU time stolen while the row played, or says the kernel
    does not count it."""
    rate, block = 44100, 128
    t = np.full(100, 1e-4)
    row = RealTimeRow(times=t, late=np.zeros(100), dry=np.zeros(100, bool), missed=0, latency=1279)
    cells = [c.strip() for c in row_cells(row, block / rate, rate, block, 4e-4, 0.04).split("|")]
    assert cells[6] == "0, 0.00; 0; 40"
    cells = [c.strip() for c in row_cells(row, block / rate, rate, block, 4e-4, None).split("|")]
    assert cells[6] == "0, 0.00; 0; not counted"
    stolen = stolen_seconds()  # this machine's count since boot, where Linux keeps one
    assert stolen is None or stolen >= 0


def test_a_row_with_a_spare_worker_says_how_many_hops_came_from_it():
    rate, block = 44100, 128
    t = np.full(100, 1e-4)
    row = RealTimeRow(times=t, late=np.zeros(100), dry=np.zeros(100, bool), missed=2, latency=1279, rescued=7)
    assert [c.strip() for c in row_cells(row, block / rate, rate, block, 4e-4).split("|")][5] == "2 (7 from the spare)"
    row.rescued = None  # no spare worker: the count alone
    assert [c.strip() for c in row_cells(row, block / rate, rate, block, 4e-4).split("|")][5] == "2"
