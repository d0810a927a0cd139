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

import errno
import glob
import os
import struct
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np
from pedalboard.io import AudioFile

from ..core.layout import first_non_finite
from ..core.resample import MAX_RATE, MIN_RATE
from ..core.stats import RunningStats
from ..errors import ExportError, Interrupted
from .formats import AUDIO_EXTENSIONS

READ_BLOCK = 1 << 16  # samples per read from disk: files stream, memory stays flat


def _hidden(path: Path, root: Optional[Path] = None) -> bool:
    """Hidden files and folders (dot names, our own .partial files) below `root`."""
    parts = path.relative_to(root).parts if root is not None else (path.name,)
    return any(p.startswith(".") for p in parts)


def resolved(path: Path) -> Path:
    """`path.resolve()`, or its absolute path if it is a symbolic link loop (resolve raises
    then, RuntimeError or OSError by Python version): the loop is reported when the file
    is opened, as a bad input, not as a traceback here."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return path.absolute()


def _inside(path: Path, folders: Sequence[Path]) -> bool:
    where = resolved(path)
    return any(where == f or f in where.parents for f in folders)


def is_audio_name(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


def _file_or_bad_link(path: Path) -> bool:
    """A file, or a link that leads nowhere (a loop, a missing target): reported when it is
    opened rather than silently left out."""
    return path.is_file() or (path.is_symlink() and not path.exists())


def find_inputs(
    items: Iterable[str],
    recursive: bool = False,
    exclude: Sequence[Path] = (),
    outputs_of: Optional[Callable[[List[Path]], Set[Path]]] = None,
) -> List[Path]:
    """Files, folders (their audio files; all levels with `recursive`) and glob patterns.

    Folders and patterns yield only audio files (by suffix), never hidden files or
    anything inside an `exclude` folder (the output folder: a rerun inside the album
    must not separate the previous stems). A folder that is itself an `exclude` folder
    yields its files but those that `outputs_of(all files found)` (resolved paths) says
    are outputs of the others: there the earlier run's stems sit beside the inputs. A
    file named explicitly is taken as it is, and reported when it is read if it is not
    audio."""
    skip = [resolved(Path(f)) for f in exclude]
    found: List[Path] = []
    in_output: Set[Path] = set()  # found by looking into an output folder
    named: Set[Path] = set()
    for item in items:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            # an output folder inside this one is left out; this folder itself, named as the
            # output, is not: there only what outputs_of recognises is left out
            inner = [f for f in skip if f != resolved(path)]
            files = sorted(
                p
                for p in path.glob(pattern)
                if _file_or_bad_link(p) and is_audio_name(p) and not _hidden(p, path) and not _inside(p, inner)
            )
            if resolved(path) in skip:
                in_output.update(resolved(p) for p in files)
            found += files
        elif not path.exists() and glob.has_magic(item):
            # glob already leaves out dot names unless the pattern spells them
            found += sorted(
                p
                for p in map(Path, glob.glob(item, recursive=recursive))
                if _file_or_bad_link(p) and is_audio_name(p) and not _inside(p, skip)
            )
        else:
            found.append(path)
            named.add(resolved(path))  # named explicitly: taken as it is
    unique, seen = [], set()
    for p in found:
        key = resolved(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    if in_output and outputs_of is not None:
        outputs = outputs_of(unique) & (in_output - named)
        unique = [p for p in unique if resolved(p) not in outputs]
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


def _crc_table(poly: int, bits: int) -> List[int]:
    top, mask, table = 1 << (bits - 1), (1 << bits) - 1, []
    for byte in range(256):
        crc = byte << (bits - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
        table.append(crc)
    return table


_CRC8, _CRC16 = _crc_table(0x07, 8), _crc_table(0x8005, 16)  # FLAC's header and frame CRCs


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ byte]
    return crc


_FLAC_BLOCK = {1: 192, **{c: 576 << (c - 2) for c in range(2, 6)}, **{c: 256 << (c - 8) for c in range(8, 16)}}


def _flac_frame(buf: bytes, i: int, fixed_block: int) -> Optional[Tuple[int, int]]:
    """(first sample, samples) of the FLAC frame whose header starts at buf[i], or None
    if the bytes there are not a valid frame header (its CRC-8 must match)."""
    if i + 6 > len(buf) or buf[i] != 0xFF or buf[i + 1] not in (0xF8, 0xF9):
        return None
    size_code, rate_code = buf[i + 2] >> 4, buf[i + 2] & 0x0F
    if size_code == 0 or rate_code == 15 or (buf[i + 3] >> 1) & 7 in (3, 7) or buf[i + 3] & 1:
        return None
    first, j = buf[i + 4], i + 5  # the frame or sample number, UTF-8 coded
    # k continuation bytes follow a first byte of k + 1 ones and a zero (110xxxxx: k = 1)
    extra = 0 if first < 0x80 else next((k for k in range(1, 7) if first >> (6 - k) == (1 << (k + 2)) - 2), None)
    if extra is None or j + extra > len(buf):
        return None
    number = first & (0x3F >> extra if extra else 0x7F)
    for byte in buf[j : j + extra]:
        if byte >> 6 != 2:
            return None
        number = number << 6 | byte & 0x3F
    j += extra
    block = _FLAC_BLOCK.get(size_code)
    if size_code in (6, 7):
        width = 1 if size_code == 6 else 2
        block = int.from_bytes(buf[j : j + width], "big") + 1
        j += width
    j += {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if j >= len(buf) or _crc8(buf[i:j]) != buf[j]:
        return None
    start = number if buf[i + 1] == 0xF9 else number * fixed_block
    return start, block


def _flac_present(path: Path) -> Optional[Tuple[int, int]]:
    """(samples STREAMINFO declares, samples the file holds) for FLAC, whose decoder too
    pads a cut-short file with silence: the last frame whose header is intact counts only
    if its CRC-16, the frame's last two bytes, shows it whole up to the end of the file."""
    with open(path, "rb") as fh:
        head = fh.read(42)
        if head[:4] != b"fLaC" or head[4] & 0x7F != 0:
            return None
        fixed_block = int.from_bytes(head[8:10], "big")  # STREAMINFO's max block size
        total = int.from_bytes(head[21:26], "big") & ((1 << 36) - 1)
        size = path.stat().st_size
        if total == 0:  # "unknown" (a streaming encoder): nothing to compare with
            return None
        tail = max(0, size - (1 << 20))  # the last frame lies in the last MiB
        fh.seek(tail)
        buf = fh.read()
    for i in range(len(buf) - 6, -1, -1):
        frame = _flac_frame(buf, i, fixed_block)
        if frame is not None and frame[0] + frame[1] <= total + fixed_block:
            whole = len(buf) - i > 2 and _crc16(buf[i:-2]) == int.from_bytes(buf[-2:], "big")
            return total, frame[0] + frame[1] if whole else frame[0]
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

    def blocks(
        self, stop: Optional[threading.Event] = None, start: int = 0, end: Optional[int] = None
    ) -> Iterator[np.ndarray]:
        """(channels, n) float32 blocks of samples [start, end), READ_BLOCK at a time;
        Interrupted when `stop` is set, ExportError if the file ends early."""
        end = self.frames if end is None else min(end, self.frames)
        self.file.seek(start)
        while self.file.tell() < end:
            if stop is not None and stop.is_set():
                raise Interrupted()
            block = self.file.read(min(READ_BLOCK, end - self.file.tell()))
            if block.shape[1] == 0:
                raise ExportError(f"{self.path}: the file ends early: {self.file.tell()} of {end} samples readable")
            # checked here, where the block's place in the file is known (a processor
            # downstream sees only the block)
            bad = first_non_finite(block)
            if bad is not None:
                at = self.file.tell() - block.shape[1] + bad[0]
                raise ExportError(
                    f"{self.path} holds NaN or Inf (first at sample {at}, channel "
                    f"{bad[1]}, {at / self.sample_rate:.3f} s in); export the file "
                    "again from its source, or replace those samples"
                )
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
        if path.is_symlink():
            try:
                os.stat(path)
                what = "it leads to something that is not a file"
            except OSError as e:
                what = (
                    "it leads back to itself (a loop)" if e.errno == errno.ELOOP else "what it points to does not exist"
                )
            raise ExportError(f"{path}: a symbolic link to {os.readlink(path)}, and {what}; point it at an audio file")
        raise ExportError(f"{path}: no such file")
    try:
        f = AudioFile(str(path))
    except Exception as e:  # pedalboard raises several types for unreadable files
        kinds = ", ".join(s.lstrip(".") for s in AUDIO_EXTENSIONS)
        raise ExportError(
            f"{path}: cannot read it as audio ({str(e).strip().splitlines()[0]}); stemforge reads {kinds}"
        ) from None
    with f:
        rate, channels, frames = f.samplerate, f.num_channels, int(f.frames)
        if frames == 0:
            raise ExportError(f"{path}: the file holds no audio")
        if max_channels is not None and channels > max_channels:
            raise ExportError(
                f"{path}: {channels} channels; stemforge reads mono or stereo "
                "files: split it into mono or stereo files first"
            )
        if rate != int(rate) or not MIN_RATE <= rate <= MAX_RATE:
            raise ExportError(f"{path}: sample rate {rate:g} Hz is outside {MIN_RATE}-{MAX_RATE} Hz; resample it first")
        sizes = _declared_and_present(path)
        present = frames * sizes[1] // sizes[0] if sizes and sizes[1] < sizes[0] else None
        if present is None and path.suffix.lower() == ".flac":
            declared = _flac_present(path)
            present = declared[1] if declared and declared[1] < declared[0] else None
        if present is not None:
            raise ExportError(
                f"{path}: the file ends early: its header says {frames} samples, "
                f"about {present} are present; it is truncated (copy or export "
                "it again)"
            )
        yield Source(path, f, int(rate), channels, frames)
