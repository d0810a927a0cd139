"""Peak resident memory of the running process, for the benchmarks' child processes.

Not ``resource.getrusage(...).ru_maxrss``: Linux carries a parent's peak into its
child across fork and exec, so a child started by a large benchmark process reports
at least the parent's size. VmHWM belongs to the process's own address space, which
exec makes new.
"""

from __future__ import annotations


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")
