"""Start-up time: `import stemforge` and `stemforge --help`, each in a fresh interpreter.

    python -m bench.import_time                          # this checkout, median of 7 runs
    python -m bench.import_time --plugin OTHER/plugin    # another checkout's package

The package imports its public names on first use and the command line builds only the
arguments of the command it runs, so neither loads torch (seconds) or the apps. A test
asserts what is imported (host_tests/test_cli_options.py); this script measures how long it
takes, which depends on the machine and on what else runs on it.

BEFORE holds the figures of main at dc8321b (before issue 23), measured with
`python -m bench.import_time --plugin /work/main/plugin` on the 2-core development machine
while two training jobs ran.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "import stemforge": ["-c", "import stemforge"],
    "stemforge --help": ["-m", "stemforge", "--help"],
}
BEFORE = {"import stemforge": 0.08, "stemforge --help": 5.1}


def measure(args: List[str], plugin: Path, runs: int) -> float:
    """Median wall-clock seconds of `python ARGS` with `plugin` first on the path."""
    env = dict(os.environ, PYTHONPATH=str(plugin))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--plugin",
        type=Path,
        default=ROOT / "plugin",
        help="the folder holding the stemforge package (default: this checkout's)",
    )
    parser.add_argument("--runs", type=int, default=7, help="runs per command (default: 7)")
    args = parser.parse_args()
    figures: Dict[str, float] = {name: measure(cmd, args.plugin, args.runs) for name, cmd in COMMANDS.items()}
    print(f"{'':<18} {'now':>8} {'before':>8}   (median of {args.runs}, {args.plugin})")
    for name, seconds in figures.items():
        print(f"{name:<18} {seconds:7.2f}s {BEFORE[name]:7.2f}s")


if __name__ == "__main__":
    main()
