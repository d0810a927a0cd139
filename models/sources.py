"""The contract of a training source and the readers the sources share.

A source (models/real.py, models/real_more.py) is a `Source` whose `items()` yields
`Item`s: stems float32 (2, n) at 44.1 kHz, mono duplicated. GitHub sources are read
from git repositories under $STEMFORGE_SOURCES (see models/real.py).
"""

from __future__ import annotations

import io
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, Tuple

import numpy as np

from models.corpus import RATE

SOURCES_DIR = Path(os.environ.get("STEMFORGE_SOURCES", Path.home() / ".cache" / "stemforge" / "sources"))
KNOWN_STEMS = ("drums", "bass", "other", "vocals", "accompaniment")


@dataclass
class Item:
    id: str  # unique within its source, filename-safe
    group: str  # singer / song / voice bank: the unit of the held-out split
    stems: Dict[str, np.ndarray]  # KNOWN_STEMS keys, float32 (2, n) at 44.1 kHz
    rate: int  # the recording's own sample rate (its bandwidth)


@dataclass
class Source:
    name: str
    where: str  # how to get it, e.g. "github:owner/name"
    licence: str
    kind: str  # "multitrack", "karaoke", "vocals" or "accompaniment"
    items: Callable[[], Iterator[Item]]
    test_groups: Tuple[str, ...] = ()
    used_for: str = ""


class MissingSource(RuntimeError):
    pass


def repo_dir(owner_name: str) -> Path:
    """The git repository of github:owner/name, or MissingSource saying how to get it."""
    path = SOURCES_DIR / owner_name.replace("/", "+")
    if not path.exists():
        raise MissingSource(f"{owner_name} not found at {path}: git clone https://github.com/{owner_name} {path}")
    return path


def repo_files(root: Path, prefix: str, suffixes: Tuple[str, ...]) -> Iterator[Tuple[str, Callable[[], bytes]]]:
    """(path, reader) for files under `prefix` in a work tree or a bare repository.
    Files a shallow snapshot left out raise on read; callers count them."""
    bare = (root / "HEAD").is_file() and (root / "objects").is_dir()
    work_tree = root / prefix
    if not bare and work_tree.is_dir():
        for p in sorted(work_tree.rglob("*")):
            if p.is_file() and p.name.lower().endswith(suffixes):
                yield str(p.relative_to(root)), p.read_bytes
        return
    git_dir = root / ".git" if (root / ".git").exists() else root
    listing = subprocess.run(
        ["git", "--git-dir", str(git_dir), "ls-tree", "-r", "-z", "HEAD"] + (["--", prefix] if prefix else []),
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8", "replace")
    for entry in sorted(filter(None, listing.split("\0"))):
        meta, path = entry.split("\t", 1)
        sha = meta.split()[2]
        if path.lower().endswith(suffixes):
            yield (
                path,
                (
                    lambda sha=sha: (
                        subprocess.run(
                            ["git", "--git-dir", str(git_dir), "cat-file", "blob", sha], check=True, capture_output=True
                        ).stdout
                    )
                ),
            )


def decode_audio(data: bytes, suffix: str) -> Tuple[np.ndarray, int]:
    """(channels, n) float32 and the file's rate; m4a through PyAV, the rest through pedalboard."""
    if suffix.lower() in (".m4a", ".mp4", ".aac"):
        import av

        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.audio[0]
            rate = stream.rate
            frames = [f.to_ndarray() for f in container.decode(stream)]
        fmt = stream.format.name if stream.format else "fltp"
        x = (
            np.concatenate(frames, axis=1)
            if fmt.endswith("p")
            else np.concatenate([f.reshape(-1, stream.channels).T for f in frames], axis=1)
        )
        return x.astype(np.float32), rate
    from pedalboard.io import AudioFile

    with AudioFile(io.BytesIO(data)) as f:
        return f.read(f.frames).astype(np.float32), int(f.samplerate)


def to_stereo_44k(x: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    if x.shape[0] == 1:
        x = np.repeat(x, 2, axis=0)
    x = x[:2]
    if rate != RATE:
        x = soxr.resample(x.T, rate, RATE, quality="HQ").T
    return np.ascontiguousarray(x, dtype=np.float32)
