#!/usr/bin/env python3
"""Export cost of long files: real-time factor and peak memory of `stemforge separate`.

    python -m bench.export_memory [--minutes 5 20] [--model studio]

Generates stereo 44.1 kHz 16-bit WAV files of the given lengths (the shared
test arrangement, a minute at a time), exports all four stems of each with
the command line in a fresh process, and prints the real-time factor and the
peak resident memory of that process side by side, with their ratios to the
shortest file: memory that does not grow with length shows a ratio near 1.
A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.signals import music


def write_long(path: Path, minutes: float) -> None:
    from pedalboard.io import AudioFile

    with AudioFile(str(path), "w", 44100, 2, bit_depth=16) as f:
        for minute in range(int(minutes)):
            f.write(music(60.0, seed=minute) * 0.9)


def export(path: Path, out: Path, model: str) -> tuple:
    """(seconds, peak RSS in MB) of one `stemforge separate` run in its own process."""
    start = time.perf_counter()
    # A fresh interpreter per run, measuring its own peak (see bench/peak_rss.py).
    code = (
        "import sys; from bench.peak_rss import peak_rss_mb; "
        "from stemforge.cli import main; rc = main(sys.argv[1:]); "
        "print('PEAK', peak_rss_mb() * 1024); sys.exit(rc)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "separate", str(path), "-o", str(out), "--model", model, "-q", "--overwrite"],
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"export failed: {result.stderr}")
    peak_kb = float(result.stdout.split("PEAK")[-1].split()[0])
    return took, peak_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 20])
    parser.add_argument("--model", default="studio")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            src = Path(tmp) / f"long-{minutes:g}min.wav"
            write_long(src, minutes)
            took, peak = export(src, Path(tmp) / "out", args.model)
            rows.append((minutes, took, peak))
            src.unlink()
    base = rows[0]
    print(f"stemforge separate, model {args.model}, all four stems, 32-bit float WAV")
    print(f"{'length':>8} {'seconds':>9} {'RTF':>7} {'peak RSS MB':>12} {'RSS ratio':>10} {'time ratio':>11}")
    for minutes, took, peak in rows:
        print(
            f"{minutes:>6g} m {took:9.1f} {took / (minutes * 60):7.4f} {peak:12.0f} "
            f"{peak / base[2]:10.2f} {took / base[1]:11.2f}"
        )


if __name__ == "__main__":
    main()
