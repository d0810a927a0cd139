"""`stemforge live`'s loop on the wall clock: does this machine keep up?

    python -m bench.live [--seconds 20] [--models live] [--buffers 128,256,512] [--rate 44100]
                         [--queue 3] [--realtime-priority]

The measurement the tests do not make (host_tests/test_live.py checks the loop's counting on
a simulated clock): the shared music signal played through `run_live` on a `SimulatedDevice`
paced by the wall clock, one torch thread, as `stemforge live --simulate` plays a file.
Per model and buffer size: under-runs (buffers the device played as silence), late blocks
(processed in longer than a buffer lasts), and the mean and worst processing time. The
figures depend on the machine and on what else runs on it: say which when quoting them.
"""

from __future__ import annotations

import argparse
import os
import platform

from bench.signals import music


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--models", default="live")
    parser.add_argument("--buffers", default="128,256,512")
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--queue", type=int, default=3)
    parser.add_argument(
        "--realtime-priority",
        action="store_true",
        help="run the loop at SCHED_FIFO priority, as a DAW's audio thread runs",
    )
    args = parser.parse_args()

    import stemforge
    from stemforge.apps.live import SimulatedDevice, raise_priority, run_live

    priority = raise_priority() if args.realtime_priority else "normal priority"
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    x = music(args.seconds, args.rate, seed=1)
    print(
        f"{args.seconds:g} s of stereo at {args.rate} Hz on {cpu_model()} ({os.cpu_count()} cores, "
        f"load average {load}); one torch thread; {priority}; queue {args.queue}\n"
    )
    print("| model | buffer | under-runs | late blocks | blocks | mean ms | worst ms | buffer ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.models.split(","):
        for size in map(int, args.buffers.split(",")):
            sep = stemforge.StemSeparator(name, stem="vocals", threads=1)
            stats = run_live(sep, SimulatedDevice(x, args.rate, buffer_size=size, queue=args.queue))
            print(
                f"| {name} | {size} | {stats.underruns} | {stats.late_blocks} | {stats.blocks} | "
                f"{1e3 * stats.busy_seconds / stats.blocks:.3f} | {1e3 * stats.worst_seconds:.3f} | "
                f"{1e3 * size / args.rate:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
