#!/usr/bin/env python3
"""A catalogue's export on a Ray cluster beside the one-process local export.

    python -m bench.cluster [--files 12] [--seconds 60] [--model studio]

Writes a small catalogue (the shared test arrangement, 16-bit stereo 44.1 kHz), then
exports all four stems of it in fresh driver processes: locally with one process (-j 1,
what `stemforge separate` does by default; also with OMP_NUM_THREADS=1, the environment
Ray gives a worker of one CPU, so that the cluster's own cost reads apart from that), and
on a Ray cluster of a head and two worker nodes on this machine (bench/loopback_cluster.py: separate
`ray start` processes, loopback only) with 1 and with 2 worker processes, then locally
once more (how much a shared machine's load moved meanwhile). Prints side by side:

- throughput in audio hours per hour, over the whole run (driver start-up, model
  loading, Ray's connection and actor start included) and over the files alone
  (first file handed out to last result);
- the fixed cost before the first file, and the overhead per file: the time from
  handing a file out to its result, less the time the worker spent exporting it,
  beyond what the same measure is in the local run (1 worker: no queueing);
- a projection for N machines, with its assumptions printed beside it.

On a shared machine, compare the ratios within one run, not figures across runs.
A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from bench.loopback_cluster import LoopbackCluster
from bench.signals import music

HERE = Path(__file__).resolve().parent

CATALOGUE = (10_000, 4.0)  # tracks, minutes each: a label's back catalogue, for the projection
MOUNT_MB_S = 1100.0  # the shared mount's bandwidth in the projection: 10 GbE NFS


def measure(
    inputs: List[str], out: str, model: str, cluster: Optional[str], workers: Optional[int]
) -> Dict[str, float]:
    """One export, timed by a Reporter in the driver (run in its own process)."""
    import stemforge
    from stemforge.apps.batch import Reporter

    class Timing(Reporter):
        def __init__(self) -> None:
            self.started: Dict[Path, float] = {}
            self.waits: List[float] = []

        def start(self, position: int, total: int, path: Path) -> None:
            self.started[path] = time.perf_counter()

        def finish(self, result) -> None:
            self.waits.append(time.perf_counter() - self.started[result.input] - result.seconds)

    timing = Timing()
    began = time.perf_counter()
    report = stemforge.export(inputs, out, model=model, reporter=timing, cluster=cluster, workers=workers)
    ended = time.perf_counter()
    assert report.ok and len(report.of("done")) == len(inputs), report
    first = min(timing.started.values())
    return {
        "wall": ended - began,
        "before_first": first - began,
        "files": ended - first,
        "audio": sum(r.audio_seconds for r in report.files),
        "busy": sum(r.seconds for r in report.files),
        "wait_per_file": sum(timing.waits) / len(timing.waits),
    }


def run_measure(
    command_prefix: List[str],
    inputs: List[Path],
    out: Path,
    model: str,
    cluster: Optional[str] = None,
    workers: Optional[int] = None,
    env: Optional[Dict[str, str]] = None,
) -> Dict[str, float]:
    args = [
        sys.executable,
        "-m",
        "bench.cluster",
        "--measure",
        "--model",
        model,
        "--out",
        str(out),
        *(["--cluster", cluster, "--workers", str(workers)] if cluster else []),
        *map(str, inputs),
    ]
    result = subprocess.run(command_prefix + args, capture_output=True, text=True, timeout=3600, env=env)
    if result.returncode:
        raise SystemExit(f"measurement failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def projection(
    one: Dict[str, float], two: Dict[str, float], overhead: float, file_seconds: float, mount_mb_s: float
) -> List[str]:
    per_worker = one["audio"] / one["busy"]  # audio hours per hour of one worker, files alone
    efficiency = (two["audio"] / two["files"]) / (2 * one["audio"] / one["files"])
    # bytes a worker moves per second of audio: a 16-bit stereo input read, four 32-bit
    # float stereo stems written
    mb_per_audio_s = 44100 * 2 * (2 + 4 * 4) / 1e6
    mount_limit = mount_mb_s / mb_per_audio_s  # audio hours per hour the mount carries
    driver_limit = file_seconds / max(overhead, 1e-3)  # the driver hands out files one by one
    tracks, minutes = CATALOGUE
    hours = tracks * minutes / 60
    lines = [
        "",
        f"Projection: N machines of 2 worker processes each, for {tracks} tracks of "
        f"{minutes:.0f} min ({hours:.0f} audio hours). Assumptions:",
        f"  - a worker exports {per_worker:.1f} audio hours per hour (this run, 1 worker, files alone);",
        f"  - two workers on one machine reach {efficiency:.0%} of twice one (measured "
        "here); machines add linearly (each file is independent, no traffic between workers);",
        f"  - the shared mount carries {mount_mb_s:.0f} MB/s (--mount-mb-s): a worker moves "
        f"{mb_per_audio_s:.2f} MB per audio second, so at most {mount_limit:.0f} audio "
        "hours per hour;",
        f"  - the driver's overhead per file ({overhead * 1000:.0f} ms here) bounds it at "
        f"{driver_limit:.0f} audio hours per hour for files of {file_seconds:.0f} s "
        f"(for {minutes:.0f}-min tracks: {minutes * 60 / max(overhead, 1e-3):.0f});",
        "  - start-up (connecting, loading the model once per worker) is paid once.",
        f"{'machines':>10} {'audio h/h':>10} {'catalogue':>11}  limit",
    ]
    for n in (1, 2, 4, 8, 16, 32, 64):
        compute = n * 2 * per_worker * efficiency
        rate = min(compute, mount_limit, minutes * 60 / max(overhead, 1e-3))
        limit = "workers" if rate == compute else "mount" if rate == mount_limit else "driver"
        lines.append(f"{n:>10} {rate:>10.0f} {hours / rate:>9.1f} h  {limit}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--model", default="studio")
    ap.add_argument(
        "--mount-mb-s",
        type=float,
        default=MOUNT_MB_S,
        help="the shared mount's bandwidth for the projection (default: %(default)s, 10 GbE NFS; 1 GbE: 110)",
    )
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # one driver
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--cluster", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    ap.add_argument("inputs", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.inputs, args.out, args.model, args.cluster, args.workers)))
        return

    from pedalboard.io import AudioFile

    root = Path(tempfile.mkdtemp(prefix="stemforge-cluster-bench-"))
    inputs = []
    for i in range(args.files):
        inputs.append(root / "catalogue" / f"track {i:02d}.wav")
        inputs[-1].parent.mkdir(parents=True, exist_ok=True)
        with AudioFile(str(inputs[-1]), "w", 44100, 2, bit_depth=16) as f:
            f.write(music(args.seconds, seed=i) * 0.9)
    plugin = str(HERE.parent / "plugin")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [plugin, os.environ.get("PYTHONPATH")]))}
    # Ray starts a worker of one CPU with OMP_NUM_THREADS=1; a local run leaves it unset.
    # Both local variants are measured so that the cluster's own cost can be read apart.
    local_envs = {
        "local, 1 process": {**os.environ, **env},
        "local, OMP=1": {**os.environ, **env, "OMP_NUM_THREADS": "1"},
    }
    results: Dict[str, Dict[str, float]] = {}
    try:
        for name, local_env in local_envs.items():
            results[name] = run_measure([], inputs, root / f"out{len(results)}", args.model, env=local_env)
        with LoopbackCluster(workers=2, env=env) as cluster:
            for workers in (1, 2):
                results[f"cluster, {workers} worker{'s' * (workers > 1)}"] = run_measure(
                    cluster.command([]),
                    inputs,
                    root / f"out{len(results)}",
                    args.model,
                    cluster.address,
                    workers,
                    env=cluster.env,
                )
        for name, local_env in local_envs.items():  # again: how much the shared machine moved
            results[name + ", again"] = run_measure([], inputs, root / f"out{len(results)}", args.model, env=local_env)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    local = results["local, 1 process"]
    one = results["cluster, 1 worker"]
    overhead = one["wait_per_file"] - results["local, OMP=1"]["wait_per_file"]
    print(
        f"{args.files} files of {args.seconds:.0f} s, model {args.model}, one torch thread per "
        f"file; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end (other jobs "
        "on the machine count)"
    )
    print(
        f"{'':<25} {'wall s':>7} {'h/h all':>8} {'h/h files':>10} {'vs local':>9} "
        f"{'RTF/worker':>11} {'before 1st s':>13} {'wait/file ms':>13}"
    )
    for name, r in results.items():
        print(
            f"{name:<25} {r['wall']:>7.1f} {r['audio'] / r['wall']:>8.1f} "
            f"{r['audio'] / r['files']:>10.1f} {local['files'] / r['files']:>8.2f}x "
            f"{r['busy'] / r['audio']:>11.3f} {r['before_first']:>13.1f} "
            f"{r['wait_per_file'] * 1000:>13.0f}"
        )
    print(
        f"overhead per file on the cluster (1 worker, wait/file beyond local OMP=1): "
        f"{overhead * 1000:.0f} ms; fixed cost before the first file: "
        f"{one['before_first'] - local['before_first']:+.1f} s beyond local"
    )
    print(
        "(OMP=1: OMP_NUM_THREADS=1 in the environment, as Ray gives its workers; "
        "h/h = audio hours per hour; 'files' = first file handed out to last result)"
    )
    print("\n".join(projection(one, results["cluster, 2 workers"], overhead, args.seconds, args.mount_mb_s)))


if __name__ == "__main__":
    main()
