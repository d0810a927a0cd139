#!/usr/bin/env python3
"""Offline vs streaming cost of the same model on the same audio, side by side.

    python -m bench.stream_vs_offline [--model NAME ...] [--seconds 30] [--threads 1]

For each model, prints in one run: the offline time; the time of
process(reset=False) (pedalboard-style streaming) and of process_block (a
DAW's real-time calls) at host blocks of 128, 512 and 4096 samples, each with
its ratio to offline and its real-time factor; and latency_samples at 44.1
and 48 kHz. A benchmark, not a test: the figures are ratios measured in one
run on a shared machine.

By default it measures the fixtures and the shipped presets (`live`,
`studio`); where no preset is shipped, `untrained-bench-large` stands in: a
MaskNet of a production model's size (3.6 M parameters) with random weights,
built on the fly. The fixtures are so small that per-call overhead is most of
what they measure.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import stemforge
from bench.signals import music

ROOT = Path(__file__).resolve().parents[1]

LARGE = "untrained-bench-large"


def build_large(folder: Path) -> Path:
    """A production-sized MaskNet with random weights, saved through the model contract."""
    from models.fixtures import Fixture, build_fixture
    from stemforge.io.model_files import save_model

    module, info = build_fixture(
        Fixture(
            LARGE,
            "streaming",
            44100,
            2,
            dict(n_fft=2048, hop=512, hidden=256, dilations=(1, 2, 4, 8, 16), lookahead_frames=2),
        )
    )
    path = folder / f"{LARGE}.ts"
    save_model(module, info, path)
    return path


BLOCKS = (128, 512, 4096)


def best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(model: stemforge.Model, x: np.ndarray, rate: int, threads: int, runs: int) -> None:
    seconds = x.shape[1] / rate
    sep = stemforge.StemSeparator(model, stem="vocals", threads=threads)
    print(f"\n{model!r}")
    offline = best_of(runs, lambda: sep(x, rate))

    def chunks(size):
        sep.prepare(rate, 2)
        for i in range(0, x.shape[1], size):
            sep.process(x[:, i : i + size], rate, reset=False)
        sep.flush()

    def blocks(size):
        sep.prepare(rate, 2)
        for i in range(0, x.shape[1], size):
            sep.process_block(x[:, i : i + size], rate)

    rows = [("offline sep(audio, sr)", offline)]
    rows += [(f"process(reset=False) {size:>5}", best_of(runs, lambda: chunks(size))) for size in BLOCKS]
    rows += [(f"process_block        {size:>5}", best_of(runs, lambda: blocks(size))) for size in BLOCKS]
    print(f"  {'mode':<28} {'seconds':>8} {'x offline':>10} {'RTF':>8}")
    for label, t in rows:
        print(f"  {label:<28} {t:8.3f} {t / offline:10.2f} {t / seconds:8.4f}")
    for host_rate in (44100, 48000):
        sep.prepare(host_rate, 2)
        print(
            f"  latency_samples at {host_rate} Hz: {sep.latency_samples} "
            f"({1000 * sep.latency_samples / host_rate:.1f} ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", action="append", help=f"model name or file, repeatable (default: fixtures and {LARGE})"
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="best of N for each figure")
    args = parser.parse_args()

    x = music(args.seconds, args.rate)
    print(
        f"audio: {args.seconds:g} s stereo at {args.rate} Hz; torch threads {args.threads}; "
        f"best of {args.runs}; stem='vocals'"
    )
    with tempfile.TemporaryDirectory() as tmp:
        presets = [p for p in ("live", "studio") if (ROOT / "models" / f"{p}.ts").exists()]
        names = args.model or ["fixture-stream", "fixture-window", *(presets or [str(build_large(Path(tmp)))])]
        for name in names:
            measure(stemforge.load_model(name), x, args.rate, args.threads, args.runs)


if __name__ == "__main__":
    main()
