"""Reading audio files: which inputs, and their samples in blocks."""
from __future__ import annotations

import glob
import threading
from pathlib import Path
from typing import Iterable, Iterator, List, Optional

import numpy as np
from pedalboard.io import AudioFile

from ..errors import ExportError, Interrupted

AUDIO_EXTENSIONS = (".wav", ".flac", ".aiff", ".aif", ".ogg", ".mp3")
READ_BLOCK = 1 << 16  # samples per read from disk: files stream, memory stays flat


def read_blocks(f: AudioFile, end: int, stop: Optional[threading.Event] = None) -> Iterator[np.ndarray]:
    """Blocks of `f` from where it stands up to sample `end`, READ_BLOCK at a time;
    Interrupted when `stop` is set, ExportError if the file ends early."""
    while f.tell() < end:
        if stop is not None and stop.is_set():
            raise Interrupted()
        block = f.read(min(READ_BLOCK, end - f.tell()))
        if block.shape[1] == 0:
            raise ExportError(f"the file ends early: {f.tell()} of {end} samples readable")
        yield block


def find_inputs(items: Iterable[str], recursive: bool = False) -> List[Path]:
    """Files, folders (their audio files; all levels with `recursive`) and glob patterns."""
    found: List[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found += sorted(p for p in path.glob(pattern)
                            if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        elif not path.exists() and glob.has_magic(item):
            found += sorted(Path(p) for p in glob.glob(item, recursive=recursive) if Path(p).is_file())
        else:
            found.append(path)  # a missing or unreadable file is reported when it is read
    unique, seen = [], set()
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique
