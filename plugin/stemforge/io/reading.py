"""The one reading path: which inputs, open and check them, whole-file statistics, blocks.

`find_inputs` turns files, folders and glob patterns into audio files;
`open_audio` opens one and checks it (readable, not empty, mono or stereo,
a supported rate, not cut short), and the `Source` it yields reads the file in
blocks so that memory does not grow with its length. Batch export, renders,
sections, evaluate and ``live --simulate`` all read through here.

MP3 inputs are read as pedalboard decodes them, decoder delay included (about
1105 samples at 44.1 kHz for a LAME file): stems line up with that decoding.
"""
from __future__ import annotations

import glob
import struct
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from pedalboard.io import AudioFile

from ..core.engine import RunningStats
from ..core.resample import MAX_RATE, MIN_RATE
from ..errors import ExportError, Interrupted
from .formats import AUDIO_EXTENSIONS

READ_BLOCK = 1 << 16  # samples per read from disk: files stream, memory stays flat


def _hidden(path: Path, root: Optional[Path] = None) -> bool:
    """Hidden files and folders (dot names, our own .partial files) below `root`."""
    parts = path.relative_to(root).parts if root is not None else (path.name,)
    return any(p.startswith(".") for p in parts)


def _inside(path: Path, folders: Sequence[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved == f or f in resolved.parents for f in folders)


def is_audio_name(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


def find_inputs(items: Iterable[str], recursive: bool = False,
                exclude: Sequence[Path] = ()) -> List[Path]:
    """Files, folders (their audio files; all levels with `recursive`) and glob patterns.

    Folders and patterns yield only audio files (by suffix), never hidden files or
    anything inside an `exclude` folder (the output folder: a rerun inside the album
    must not separate the previous stems). A file named explicitly is taken as it is,
    and reported when it is read if it is not audio."""
    skip = [Path(f).resolve() for f in exclude]
    found: List[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            # an output folder inside this one is left out; this folder itself, named as the
            # output, is not (then the target checks refuse what would replace an input)
            inner = [f for f in skip if f != path.resolve()]
            found += sorted(p for p in path.glob(pattern) if p.is_file() and is_audio_name(p)
                            and not _hidden(p, path) and not _inside(p, inner))
        elif not path.exists() and glob.has_magic(item):
            # glob already leaves out dot names unless the pattern spells them
            found += sorted(p for p in map(Path, glob.glob(item, recursive=recursive))
                            if p.is_file() and is_audio_name(p) and not _inside(p, skip))
        else:
            found.append(path)
    unique, seen = [], set()
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


# -- truncated files ---------------------------------------------------------------------

def _declared_and_present(path: Path) -> Optional[Tuple[int, int]]:
    """(bytes of audio the header declares, bytes the file holds) for WAV and AIFF, whose
    decoders pad a cut-short file with silence instead of saying so; None for others."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            size = path.stat().st_size
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                little, data_id, extra = True, b"data", 0
            elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
                little, data_id, extra = False, b"SSND", 8  # SSND: offset, block size
            else:
                return None
            pos = 12
            while pos + 8 <= size:
                fh.seek(pos)
                chunk, length = struct.unpack("<4sI" if little else ">4sI", fh.read(8))
                if chunk == data_id:
                    if length == 0xFFFFFFFF:  # a streaming writer's "unknown length"
                        return None
                    return length - extra, size - pos - 8 - extra
                pos += 8 + length + (length & 1)
    except (OSError, struct.error):
        return None
    return None


# -- one open file -----------------------------------------------------------------------

@dataclass
class Source:
    """An open, checked input: its rate, channels and length, read in blocks."""

    path: Path
    file: AudioFile
    sample_rate: int
    channels: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate

    def blocks(self, stop: Optional[threading.Event] = None, start: int = 0,
               end: Optional[int] = None) -> Iterator[np.ndarray]:
        """(channels, n) float32 blocks of samples [start, end), READ_BLOCK at a time;
        Interrupted when `stop` is set, ExportError if the file ends early."""
        end = self.frames if end is None else min(end, self.frames)
        self.file.seek(start)
        while self.file.tell() < end:
            if stop is not None and stop.is_set():
                raise Interrupted()
            block = self.file.read(min(READ_BLOCK, end - self.file.tell()))
            if block.shape[1] == 0:
                raise ExportError(f"{self.path}: the file ends early: {self.file.tell()} of "
                                  f"{end} samples readable")
            yield block

    def track_stats(self, stop: Optional[threading.Event] = None) -> Tuple[float, float]:
        """The whole file's (mean, std) for models that normalise by it (Demucs), read in
        blocks so that memory stays flat."""
        stats = RunningStats()
        for block in self.blocks(stop):
            stats.add(block[None])
        return stats.get()

    def read_all(self) -> np.ndarray:
        """The whole file, (channels, frames): for what needs it at once (evaluate, the
        simulated live device)."""
        blocks = list(self.blocks())
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((self.channels, 0), np.float32)


@contextmanager
def open_audio(path: Path, max_channels: Optional[int] = 2) -> Iterator[Source]:
    """Open `path` and check it; every problem is an ExportError that names the file and
    says what to do."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    try:
        f = AudioFile(str(path))
    except Exception as e:  # pedalboard raises several types for unreadable files
        kinds = ", ".join(s.lstrip(".") for s in AUDIO_EXTENSIONS)
        raise ExportError(f"{path}: cannot read it as audio ({str(e).strip().splitlines()[0]}); "
                          f"stemforge reads {kinds}") from None
    with f:
        rate, channels, frames = f.samplerate, f.num_channels, int(f.frames)
        if frames == 0:
            raise ExportError(f"{path}: the file holds no audio")
        if max_channels is not None and channels > max_channels:
            raise ExportError(f"{path}: {channels} channels; stemforge reads mono or stereo "
                              "files: split it into mono or stereo files first")
        if rate != int(rate) or not MIN_RATE <= rate <= MAX_RATE:
            raise ExportError(f"{path}: sample rate {rate:g} Hz is outside {MIN_RATE}-{MAX_RATE} "
                              "Hz; resample it first")
        sizes = _declared_and_present(path)
        if sizes is not None and sizes[1] < sizes[0]:
            present = frames * sizes[1] // sizes[0]
            raise ExportError(f"{path}: the file ends early: its header says {frames} samples, "
                              f"about {present} are present; it is truncated (copy or export "
                              "it again)")
        yield Source(path, f, int(rate), channels, frames)
