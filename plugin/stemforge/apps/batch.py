"""What every batch app shares: progress reports and running files one after another or
in parallel, with a clean stop.

A `Reporter` hears what a batch does; the library's is silent, the command line's
prints a bar or plain lines. `run_files` runs a function over the files, `jobs`
at a time; when `stop` is set (Ctrl-C, SIGTERM in the CLI) or the caller's thread
is interrupted, the files in progress abort (their writers remove the partial
files) and no new one starts.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, TypeVar

from ..errors import Interrupted

T = TypeVar("T")

# Intra-op torch threads per file when the caller does not say. Measured on this
# project's 2-core machine (docs/user-guide.md, "Command line"): one thread per file is faster
# than two for these small convolution models, and `-j N` then shares the cores out
# without oversubscribing them.
DEFAULT_THREADS = 1


@dataclass
class FileResult:
    """What a batch did with one input."""

    input: Path
    status: str  # "done", "skipped", "planned" (dry run) or "failed"
    outputs: List[Path] = field(default_factory=list)
    message: str = ""  # the reason a file failed or was skipped
    seconds: float = 0.0  # processing time
    audio_seconds: float = 0.0  # the input's duration
    warnings: List[str] = field(default_factory=list)  # done, but not quite as asked (clipping)


@dataclass
class BatchReport:
    files: List[FileResult]
    interrupted: bool = False

    def of(self, status: str) -> List[FileResult]:
        return [r for r in self.files if r.status == status]

    @property
    def failed(self) -> List[FileResult]:
        return self.of("failed")

    @property
    def written(self) -> List[Path]:
        return [p for r in self.files if r.status == "done" for p in r.outputs]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted


class Reporter:
    """Hears a batch's progress; this one is silent (the library's default)."""

    def start(self, position: int, total: int, path: Path) -> None:
        """File `position` (1-based) of `total` begins."""

    def update(self, path: Path, done_seconds: float, total_seconds: float, elapsed: float) -> None:
        """Audio processed so far in the file, with the wall time it took."""

    def finish(self, result: FileResult) -> None:
        """A file is done, skipped, planned or failed."""

    def retrying(self, path: Path, reason: str) -> None:
        """A file starts again elsewhere: the process that ran it died (a cluster run)."""

    def overall(self, finished: int, total: int, audio_seconds: float, busy_seconds: float, elapsed: float) -> None:
        """After each file of a cluster run: files finished of `total`, the audio they held,
        the worker time they took, and the wall time since the batch began."""


# What a bad input raises: the file's failure, reported with its reason, never retried.
FILE_ERRORS = (OSError, ValueError, RuntimeError)


def run_one(path: Path, work: Callable[[], FileResult]) -> FileResult:
    """`work()`, or the file's failure if it raises one of FILE_ERRORS. Local runs and
    cluster workers both go through here, so a file is judged the same way in either."""
    try:
        return work()
    except FILE_ERRORS as e:
        return FileResult(path, "failed", message=str(e))


def run_files(
    paths: Sequence[Path],
    work: Callable[[int, Path], FileResult],
    jobs: int = 1,
    stop: Optional[threading.Event] = None,
    reporter: Optional[Reporter] = None,
) -> BatchReport:
    """Run `work(index, path)` over `paths`, `jobs` at a time, in this process. One of
    FILE_ERRORS is the file's failure (reported, the batch goes on); Interrupted ends
    the batch cleanly. (apps.cluster runs the same work on a Ray cluster.)"""
    stop = stop or threading.Event()
    reporter = reporter or Reporter()
    results: List[Optional[FileResult]] = [None] * len(paths)
    started = [0]
    lock = threading.Lock()

    def one(index: int) -> None:
        if stop.is_set():
            return
        path = paths[index]
        with lock:
            started[0] += 1
            position = started[0]
        reporter.start(position, len(paths), path)
        try:
            result = run_one(path, lambda: work(index, path))  # a bad input: report it, go on
        except Interrupted:
            return
        results[index] = result
        reporter.finish(result)

    try:
        if jobs == 1:
            for i in range(len(paths)):
                one(i)
        else:
            with ThreadPoolExecutor(jobs) as pool:
                futures = [pool.submit(one, i) for i in range(len(paths))]
                for f in futures:
                    f.result()
    except KeyboardInterrupt:  # the library's caller pressed Ctrl-C: stop the other jobs too
        stop.set()
        raise
    return BatchReport([r for r in results if r is not None], interrupted=stop.is_set())


@contextmanager
def torch_threads_for_batch(threads: Optional[int]) -> Iterator[int]:
    """Set torch's intra-op threads for a batch (per file: `threads`, default
    DEFAULT_THREADS) and restore the caller's setting afterwards."""
    import torch

    n = DEFAULT_THREADS if threads is None else threads
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(previous)


def check_counts(jobs: int, threads: Optional[int], name: str = "jobs") -> None:
    """Refuse counts that are not whole numbers of at least 1 (`threads` may be None)."""
    from ..errors import ExportError

    for what, value in ((name, jobs), ("threads", threads)):
        if value is None and what == "threads":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ExportError(f"{what} must be a whole number of at least 1, got {value!r}")
