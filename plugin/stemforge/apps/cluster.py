"""Running a batch's files on a Ray cluster: another executor for the same per-file job.

`run_on_cluster` is `batch.run_files` for many machines. Each worker process is a
Ray actor (`FileWorker`) that loads the model once and then runs the per-file
function a local run calls (``separate.export_file``) on the jobs the driver hands
it, one at a time. Inputs and outputs stay where they are: every node must see
them at the same paths (a shared mount), so only the small jobs and results cross
the network, never audio. The model travels once, through Ray's object store, so
a model file need not be on the mount.

Faults, decided in the driver:
- a worker process that dies mid-file (killed, out of memory, its node lost) is
  replaced, and its file starts again on the next free worker; a file whose
  worker dies MAX_ATTEMPTS times is reported failed (it may be what kills them);
- a file that fails for its own reasons (unreadable, corrupt) comes back as a
  "failed" result from the worker, once: it is never retried;
- the driver stopped (Ctrl-C, SIGTERM, `stop`) kills the workers and removes the
  partial files of the files they were writing; a rerun skips finished files.
Outputs are written to hidden partial files and renamed when complete (io.writing),
so a killed worker never leaves a file under its final name half written.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple, TypeVar

from ..core.loading import Model, load_model
from ..errors import ExportError
from .batch import DEFAULT_THREADS, BatchReport, FileResult, Reporter, run_one

Job = TypeVar("Job")

# Starts of one file before it is reported failed: a worker dying once or twice is
# the machine's fault (a kill, a lost node); dying on every try is the file's.
MAX_ATTEMPTS = 3
POLL_SECONDS = 0.2  # how often the driver looks at `stop` while it waits for results
# ray.kill returns, and the killed actor's calls fail, before its process has exited; a
# partial file is removed only once its writer is gone (or after this long, said in the log).
EXIT_WAIT_SECONDS = 60.0
INSTALL_HINT = "pip install 'stemforge[cluster]'"


def import_ray() -> ModuleType:
    """Ray, or an error that says how to install it (it is an optional extra)."""
    try:
        import ray
    except ImportError:
        raise ExportError(f"--cluster needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


class FileWorker:
    """One worker process of the cluster: loads the model once, then runs files.

    Made a Ray actor by `run_on_cluster` (Ray is optional, so not with a decorator)."""

    def __init__(self, model_file: bytes, model_name: str, threads: int, run_job: Callable[..., FileResult]):
        import torch

        # The same intra-op thread count as a local run: the same arithmetic, the same bytes.
        torch.set_num_threads(threads)
        self._folder = tempfile.TemporaryDirectory(prefix="stemforge-model-")
        path = Path(self._folder.name) / f"{model_name}.ts"
        path.write_bytes(model_file)
        self.model: Model = load_model(path)
        self.run_job = run_job

    def ready(self) -> Tuple[str, int]:
        """Answers once the model is loaded: the worker's node and process id."""
        import ray

        return ray.get_runtime_context().get_node_id(), os.getpid()

    def run(self, job, input_path: Path) -> FileResult:
        return run_one(input_path, lambda: self.run_job(job, self.model))


def wait_for_exit(pids: Sequence[int], seconds: float) -> List[int]:
    """Wait until the processes `pids` of this machine have exited; those still running
    after `seconds`. Run on a worker's node, as a Ray task, after the worker was killed."""
    deadline = time.monotonic() + seconds
    running = list(pids)
    while running:
        running = [pid for pid in running if _running(pid)]
        if not running or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return running


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:  # a zombie ("Z") has exited: it writes nothing
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


CLIENT_ATTEMPTS = 3  # joins through Ray Client ("ray://") tried this often


def connect(address: str) -> Tuple[ModuleType, bool]:
    """Join the Ray cluster at `address` ("auto", "HOST:PORT" or "ray://HOST:PORT");
    returns ray and whether this call connected (and so must disconnect)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    for attempt in range(1, CLIENT_ATTEMPTS + 1):
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            break
        except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError, ...
            # Ray Client's proxy on the head starts one server process per client; on a
            # loaded head that start can fail once and work the next time. Ray 2.60 words it
            # "Starting Ray client server failed", or, when the process died between two of
            # the proxy's checks, passes on psutil's ZombieProcess: both come back as an
            # initialization failure from the server.
            if "Initialization failure from server" in str(e) and attempt < CLIENT_ATTEMPTS:
                ray.shutdown()  # whatever the failed attempt left, before the next one
                time.sleep(2.0 * attempt)
                continue
            raise ExportError(
                f"cannot join the Ray cluster at {address!r} ({type(e).__name__}: {e}); "
                "start one with `ray start --head` and give its address, "
                "e.g. --cluster HOST:6379"
            ) from None
    return ray, True


def worker_count(ray: ModuleType, workers: Optional[int], threads: int, address: str) -> int:
    """Workers asked for, else one per `threads` CPUs of the cluster."""
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if cpus < threads:
        raise ExportError(
            f"the Ray cluster at {address!r} has {cpus} CPU(s), a worker needs "
            f"{threads}; start worker nodes with `ray start --address=HOST:PORT "
            "--num-cpus=N`"
        )
    return workers or cpus // threads


def run_on_cluster(
    address: str,
    jobs: Sequence[Job],
    paths: Sequence[Path],
    model: Model,
    run_job: Callable[[Job, Model], FileResult],
    remove_partials: Callable[[Job], None],
    *,
    workers: Optional[int] = None,
    threads: Optional[int] = None,
    stop: Optional[threading.Event] = None,
    reporter: Optional[Reporter] = None,
) -> BatchReport:
    """Run `run_job(job, model)` for every job on the cluster at `address`; `paths[i]` is
    job i's input as the caller named it (what the report says). `run_job` and the jobs
    must pickle by reference (module-level names) and stemforge must be installed on
    every node. See the module's docstring for faults and stops."""
    ray, connected = connect(address)
    stop = stop or threading.Event()
    reporter = reporter or Reporter()
    threads = DEFAULT_THREADS if threads is None else threads
    try:
        count = worker_count(ray, workers, threads, address)
        actor = ray.remote(FileWorker).options(num_cpus=threads, max_restarts=0, max_task_retries=0)
        model_ref = ray.put(model.path.read_bytes())
        run = _Driver(
            ray,
            lambda: actor.remote(model_ref, model.name, threads, run_job),
            jobs,
            paths,
            remove_partials,
            stop,
            reporter,
        )
        return run.batch(count)
    except KeyboardInterrupt:  # the library's caller pressed Ctrl-C
        stop.set()
        raise
    finally:
        if connected:
            ray.shutdown()


class _Driver:
    """The driver's loop: hands files to free workers, collects results, replaces dead
    workers and starts their files again, stops cleanly."""

    def __init__(
        self,
        ray: ModuleType,
        new_worker: Callable[[], Any],
        jobs: Sequence,
        paths: Sequence[Path],
        remove_partials: Callable,
        stop: threading.Event,
        reporter: Reporter,
    ):
        self.ray, self.new_worker, self.jobs, self.paths = ray, new_worker, jobs, paths
        self.remove_partials, self.stop, self.reporter = remove_partials, stop, reporter
        self.results: List[Optional[FileResult]] = [None] * len(jobs)
        self.attempts = [0] * len(jobs)
        self.pending: Deque[int] = deque(range(len(jobs)))
        self.idle: List = []
        self.starting: Dict = {}  # ready() call -> worker still loading the model
        self.process: Dict = {}  # id(worker) -> (node id, process id), from ready()
        self.running: Dict = {}  # run() call -> (job index, worker)
        self.started = 0
        self.count = self.failed_starts = 0
        self.began = time.perf_counter()

    def batch(self, count: int) -> BatchReport:
        self.count = count
        for _ in range(count):
            self.start_worker()
        try:
            while self.pending or self.running:
                if self.stop.is_set():
                    break
                self.hand_out()
                calls = list(self.starting) + list(self.running)
                for call in self.ray.wait(calls, num_returns=1, timeout=POLL_SECONDS)[0]:
                    self.collect(call)
        finally:
            self.stop_workers()
        return BatchReport([r for r in self.results if r is not None], interrupted=self.stop.is_set())

    def start_worker(self) -> None:
        worker = self.new_worker()
        self.starting[worker.ready.remote()] = worker

    def hand_out(self) -> None:
        while self.pending and self.idle:
            index, worker = self.pending.popleft(), self.idle.pop()
            self.attempts[index] += 1
            if self.attempts[index] == 1:
                self.started += 1
                self.reporter.start(self.started, len(self.jobs), self.paths[index])
            call = worker.run.remote(self.jobs[index], self.paths[index])
            self.running[call] = (index, worker)

    def collect(self, call) -> None:
        ray = self.ray
        if call in self.starting:
            worker = self.starting.pop(call)
            try:
                self.process[id(worker)] = ray.get(call)
            except ray.exceptions.RayActorError as e:  # died while loading: try another
                self.failed_starts += 1
                if self.failed_starts >= MAX_ATTEMPTS * self.count:  # not bad luck: a setup fault
                    raise ExportError(
                        f"workers cannot start on the cluster ({_last_line(e)}); is "
                        "stemforge installed on every node, with Ray's version "
                        "and Python's?"
                    ) from None
                self.start_worker()
                return
            self.idle.append(worker)
            return
        index, worker = self.running.pop(call)
        try:
            result = ray.get(call)
            self.idle.append(worker)
        except ray.exceptions.RayActorError as e:  # the worker process died mid-file
            ray.kill(worker, no_restart=True)  # or is unreachable: it must not write on
            self.start_worker()
            self.await_exit([worker])
            self.remove_partials(self.jobs[index])
            if self.attempts[index] < MAX_ATTEMPTS:
                self.reporter.retrying(self.paths[index], f"its worker died ({_first_line(e)})")
                self.pending.appendleft(index)
                return
            result = FileResult(
                self.paths[index],
                "failed",
                message=(f"its worker died on each of {MAX_ATTEMPTS} tries ({_first_line(e)})"),
            )
        except ray.exceptions.RayTaskError as e:  # an error no bad input raises: a bug, say it once
            self.idle.append(worker)
            result = FileResult(self.paths[index], "failed", message=_first_line(e.cause or e))
        self.finish(index, result)

    def finish(self, index: int, result: FileResult) -> None:
        result.input = self.paths[index]  # as the caller named it, not the worker's absolute path
        self.results[index] = result
        self.reporter.finish(result)
        finished = [r for r in self.results if r is not None]
        self.reporter.overall(
            len(finished),
            len(self.jobs),
            sum(r.audio_seconds for r in finished if r.status == "done"),
            sum(r.seconds for r in finished),
            time.perf_counter() - self.began,
        )

    def stop_workers(self) -> None:
        """Kill every worker; then no file in progress can still be written, and their
        partial files are removed (a rerun would overwrite them anyway)."""
        ray = self.ray
        busy = [worker for _, worker in self.running.values()]
        for worker in self.idle + list(self.starting.values()) + busy:
            ray.kill(worker, no_restart=True)
        if self.running:
            ray.wait(list(self.running), num_returns=len(self.running), timeout=30)
        self.await_exit(busy)
        for index, _ in self.running.values():
            self.remove_partials(self.jobs[index])

    def await_exit(self, workers: Sequence) -> None:
        """Return once the killed `workers`' processes have exited, asked of each one's node
        (the driver may be on another machine); a node that is gone runs nothing any more."""
        ray, by_node = self.ray, {}
        for worker in workers:
            if id(worker) in self.process:
                node, pid = self.process[id(worker)]
                by_node.setdefault(node, []).append(pid)
        if not by_node:
            return
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        waiter = ray.remote(num_cpus=0, max_retries=0)(wait_for_exit)
        calls = {
            waiter.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
                pids, EXIT_WAIT_SECONDS
            ): node
            for node, pids in by_node.items()
        }
        for call, node in calls.items():
            try:
                running = ray.get(call, timeout=EXIT_WAIT_SECONDS + 30)
            except Exception as e:  # the node is gone (and its processes with it), or unreachable
                logging.getLogger(__name__).warning(
                    "cannot ask node %s whether its killed workers exited: %s", node, _first_line(e)
                )
                continue
            if running:
                logging.getLogger(__name__).warning(
                    "killed workers %s on node %s are still running after %.0f s", running, node, EXIT_WAIT_SECONDS
                )


def _first_line(error: BaseException) -> str:
    lines = _lines(error)
    return lines[0] if lines else type(error).__name__


def _last_line(error: BaseException) -> str:
    """A failed actor start ends its message with the exception its __init__ raised."""
    lines = _lines(error)
    return lines[-1] if lines else type(error).__name__


def _lines(error: BaseException) -> List[str]:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # Ray colours names for terminals
    return [line.strip() for line in text.splitlines() if line.strip()]
