"""A Ray cluster on this machine whose traffic stays on loopback, for the cluster tests and
bench/cluster.py: a head and N worker nodes, each its own `ray start` (separate processes,
as on separate machines), inside a network namespace that holds only `lo`.

Why a namespace: Ray 2.60 advertises the machine's interface address even with
--node-ip-address=127.0.0.1, and its nodes and drivers then talk over that interface.
In a namespace with loopback only, Ray has nothing but 127.0.0.1 to bind. Drivers join
the namespace with `nsenter` (see `command`).

>>> with LoopbackCluster(workers=2) as cluster:                          # doctest: +SKIP
...     subprocess.run(cluster.command(["stemforge", "separate", "song.wav",
...                                     "--cluster", cluster.address]), timeout=300)

Needs Linux, util-linux's `unshare` and `nsenter`, and root (or unprivileged user
namespaces, used when not root). The loopback interface is brought up with one ioctl
from Python, so iproute2 is not needed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

PORT = 6379  # the namespace is ours: Ray's default port cannot be taken by anyone else
START_TIMEOUT = 180  # seconds for one `ray start` on a busy 2-core machine
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # jobs and results are small; the model goes once

# Run by the namespace's first process: bring `lo` up (SIOCGIFFLAGS, then SIOCSIFFLAGS
# with IFF_UP), say so, then hold the namespace open until killed.
_HOLD = """
import fcntl, signal, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0)))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))
print("up", flush=True)
while True:
    signal.pause()
"""


def _net_namespace(pid: int) -> Optional[str]:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:  # gone, or not ours to read
        return None


class LoopbackCluster:
    """Start with `with`, or `start()` and `stop()`; `stop` runs also when a start fails."""

    def __init__(self, workers: int = 2, cpus_per_worker: int = 1, env: Optional[Dict[str, str]] = None):
        self.workers, self.cpus_per_worker = workers, cpus_per_worker
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
        self.address = f"127.0.0.1:{PORT}"
        self.client_address = "ray://127.0.0.1:10001"  # Ray Client, which `ray start --head` serves
        self.holder: Optional[subprocess.Popen] = None
        self.namespace: Optional[str] = None
        self.temp_dir = ""

    def __enter__(self) -> "LoopbackCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        root = os.geteuid() == 0
        # -r maps this user to root in a user namespace: what lets a non-root user make one
        self.holder = subprocess.Popen(
            ["unshare", "-n" if root else "-rn", sys.executable, "-c", _HOLD],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        if self.holder.stdout.readline().strip() != "up":
            raise RuntimeError(
                "could not bring up loopback in a new network namespace "
                "(needs root or unprivileged user namespaces, and util-linux)"
            )
        self.namespace = _net_namespace(self.holder.pid)
        pid = str(self.holder.pid)
        self._enter = (
            ["nsenter", "-t", pid, "-n"] if root else ["nsenter", "-t", pid, "-U", "-n", "--preserve-credentials"]
        )
        # Ray's session files (sockets, logs) in a folder of this cluster's own, with a short
        # path: Unix socket paths are limited to 107 bytes
        self.temp_dir = tempfile.mkdtemp(prefix="sfray", dir="/tmp")
        ray = str(Path(sys.executable).with_name("ray"))
        common = ["--node-ip-address=127.0.0.1", f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats"]
        self._ray_start(
            [
                ray,
                "start",
                "--head",
                f"--port={PORT}",
                "--num-cpus=0",
                "--include-dashboard=false",
                f"--temp-dir={self.temp_dir}",
                *common,
            ]
        )
        for _ in range(self.workers):
            self._ray_start([ray, "start", f"--address={self.address}", f"--num-cpus={self.cpus_per_worker}", *common])

    def _ray_start(self, args: List[str]) -> None:
        result = subprocess.run(self.command(args), capture_output=True, text=True, timeout=START_TIMEOUT, env=self.env)
        if result.returncode:
            raise RuntimeError(f"{' '.join(args[1:3])} failed:\n{result.stdout}\n{result.stderr}")

    def command(self, args: Sequence[str]) -> List[str]:
        """`args` run inside the cluster's network namespace (where 127.0.0.1 is the cluster)."""
        return [*self._enter, "--", *map(str, args)]

    def processes(self) -> List[int]:
        """Every process in the namespace: the holder, Ray's daemons, workers, drivers."""
        if self.namespace is None:
            return []
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        return [p for p in pids if p != os.getpid() and _net_namespace(p) == self.namespace]

    def worker_processes(self, title: str) -> List[int]:
        """Processes whose title (Ray sets it: "ray::FileWorker.run" while a file runs)
        starts with `title`."""
        found = []
        for pid in self.processes():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(title.encode()):
                found.append(pid)
        return found

    def logs(self, pattern: str = "ray_client_server*.err") -> str:
        """The last lines of Ray's logs matching `pattern`, for a failing test's message:
        the cluster's temporary folder is gone once it stops."""
        found = sorted(Path(self.temp_dir).glob(f"session_*/logs/{pattern}")) if self.temp_dir else []
        return "\n".join(f"== {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:]) for p in found)

    def stop(self) -> None:
        """Kill every process in the namespace, by id: all of them are this cluster's and
        hold nothing worth a graceful end (Ray's daemons take 10 s and more over SIGTERM).
        Not `ray stop`: it finds Ray's processes by name on the whole machine, other
        users' clusters included. Raises RuntimeError if a process survives."""
        deadline = time.monotonic() + 60  # SIGKILLed processes end late on a busy machine
        while self.processes() and time.monotonic() < deadline:
            for pid in self.processes():  # again and again: a dying raylet may start a worker
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        left = self.processes()
        if self.holder is not None:
            try:
                self.holder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.holder.stdout.close()
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        self.namespace = None
        if left:
            raise RuntimeError(f"processes {left} of the test cluster outlived SIGKILL")
