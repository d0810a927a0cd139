"""Downloads that resume, verify and never leave an unverified file under its final name.

`download` writes the bytes to a hidden ``.<name>.partial`` next to the target,
asks the server for the rest with an HTTP Range request when a connection is
cut (and after an interrupted run), starts again from zero when the server
ignores Range, checks the SHA-256 and only then renames the file to its final
name. `file_lock` serialises processes (and threads) that would write the same
files.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

# progress(bytes done, bytes in total or None when the server does not say)
Progress = Callable[[int, Optional[int]], None]
CHUNK = 1 << 16


class DownloadError(OSError):
    """A file that could not be fetched; `url` and `reason` say which and why."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"{url}: {reason}")
        self.url, self.reason = url, reason


class ChecksumError(ValueError):
    """A file whose SHA-256 is not the published one."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str, name: Optional[str] = None) -> str:
    """Return the file's full SHA-256 if it starts with `expected` (the whole digest, or a
    prefix as Demucs and torch.hub publish them in file names); else ChecksumError naming
    the file as `name` (default: its own)."""
    digest = sha256_of(path)
    if not expected or not digest.startswith(expected.lower()):
        raise ChecksumError(
            f"{name or path.name}: SHA-256 {digest} does not match the published {expected or '(none)'}"
        )
    return digest


def url_for(location: str) -> str:
    """A URL as is; a local path as a file:// URL."""
    if "://" in location:
        return location
    return Path(location).expanduser().resolve().as_uri()


def partial_of(target: Path) -> Path:
    return target.parent / f".{target.name}.partial"


def download(
    url: str, target: Path, sha256: str, *, progress: Optional[Progress] = None, retries: int = 5, timeout: float = 60.0
) -> str:
    """Fetch `url` to `target`, verified against `sha256`; return the full SHA-256.

    A connection cut after some bytes came is resumed at once (up to `retries` times);
    otherwise the hidden partial file stays, and the next call resumes it. A file that
    fails the check is deleted and ChecksumError raised: nothing is left under `target`.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_of(target)
    resumes = 0
    while True:
        before = partial.stat().st_size if partial.exists() else 0
        try:
            _fetch(url_for(url), partial, progress, timeout)
            break
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            ConnectionError,
            socket.timeout,
            TimeoutError,
            _Cut,
        ) as e:
            after = partial.stat().st_size if partial.exists() else 0
            resumes += 1
            if after <= before or resumes > retries or isinstance(e, urllib.error.HTTPError):
                raise DownloadError(url, _reason(e)) from None
    try:
        digest = check_sha256(partial, sha256, target.name)
    except ChecksumError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return digest


class _Cut(Exception):
    """The server closed the connection before the length it announced."""


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return str(e) or type(e).__name__


def _fetch(url: str, partial: Path, progress: Optional[Progress], timeout: float) -> None:
    have = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": "stemforge"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing after what we have: the check decides
            return
        raise
    with response:
        resumed = (
            have > 0
            and getattr(response, "status", None) == 206
            and (response.headers.get("Content-Range") or "").startswith(f"bytes {have}-")
        )
        done = have if resumed else 0
        length = response.headers.get("Content-Length")
        total = done + int(length) if length and length.isdigit() else None
        with open(partial, "ab" if resumed else "wb") as f:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                f.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    if total is not None and done < total:
        raise _Cut(f"the connection closed after {done} of {total} bytes")


@contextmanager
def file_lock(path: Path, on_wait: Optional[Callable[[], None]] = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the block; `on_wait` is
    called once if another process or thread holds it (the call then waits)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
            import msvcrt

            waited = False
            while True:
                try:
                    msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
                    break
                except OSError:
                    if not waited and on_wait:
                        on_wait()
                    waited = True
                    time.sleep(0.2)
            try:
                yield
            finally:
                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
            return
        import fcntl

        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
