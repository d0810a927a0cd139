"""The one writing path: target names from templates, and atomic writes.

Names come from a template such as ``"{track}/{stem}.{ext}"`` (fields
``{track}``, ``{stem}``, ``{ext}``, ``{model}``, ``{preset}``, ``{index}``;
``{index}`` is a number and takes format specs such as ``{index:02d}``);
whatever the template or the track's name, a path that would leave the output
folder is refused, as is a target that is one of the inputs or that two inputs
would share. Every file (audio, session, text, model) is written to a hidden
``.<name>.partial<suffix>`` next to its target and renamed only when complete,
so an interruption never leaves a file under its final name half written.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import string
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set

import numpy as np
from pedalboard.io import AudioFile

from ..errors import DiskFull, ExportError
from .formats import check_format

DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
TEMPLATE_FIELDS = {"track", "stem", "ext", "model", "preset", "index"}
_EXAMPLE = dict(track="song", stem="vocals", ext="wav", model="studio", preset="studio", index=1)


def check_template(
    template: str,
    need_stem: bool = True,
    option: str = "--filename",
    fmt: Optional[str] = None,
    known: Set[str] = TEMPLATE_FIELDS,
) -> None:
    """Refuse a template with fields not in `known` or bad format specs, or (given the
    output format `fmt`) whose names would not end in that format's extension, before any
    work."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as e:
        raise ExportError(f"{option} {template!r}: {e}") from None
    unknown = fields - known
    if unknown:
        raise ExportError(
            f"unknown field(s) {', '.join('{' + f + '}' for f in sorted(unknown))} in "
            f"{option}; use {', '.join('{' + f + '}' for f in sorted(known))}"
        )
    if need_stem and "stem" not in fields:
        raise ExportError(f"{option} needs {{stem}}, or every stem would get the same name")
    try:
        template.format(**_EXAMPLE)
    except (ValueError, TypeError, IndexError, KeyError) as e:
        raise ExportError(
            f"{option} {template!r}: {e} ({{index}} is a number, e.g. {{index:02d}}; the other fields are text)"
        ) from None
    if fmt is not None:
        # the writer picks the encoder by the name's extension: it must be the format's
        suffix = Path(template.format(**dict(_EXAMPLE, ext=fmt))).suffix.lower()
        if suffix != f".{fmt}":
            has = f"ends in {suffix}" if suffix else "has no extension"
            raise ExportError(
                f"{option} {template!r} {has}, but the format is {fmt}: end the "
                f'name with .{{ext}} (e.g. "{{track}}/{{stem}}.{{ext}}"), or '
                "choose the format that matches"
            )


def safe_part(text: str) -> str:
    """A name usable as one path component: no separators, no leading dots."""
    text = re.sub(r"[/\\\x00]", "_", text).strip()
    return text.lstrip(".") or "_"


def target_path(out_dir: Path, template: str, **fields) -> Path:
    """The output file for `fields`, refused if it would land outside `out_dir`.
    Text fields are made safe path components; numbers stay numbers for their specs."""
    clean = {k: v if isinstance(v, int) else safe_part(str(v)) for k, v in fields.items()}
    relative = Path(template.format(**clean))
    root = out_dir.resolve()
    target = (root / relative).resolve()
    if relative.is_absolute() or root not in target.parents:
        raise ExportError(f"--filename {template!r} would write {target}, outside the output folder {root}")
    return target


def template_outputs(files: Sequence[Path], out_dir: Path, template: str, stems: Sequence[str], **fields) -> Set[Path]:
    """The files (resolved) among `files` that `template` under `out_dir` names as an output
    of another of them, whatever its {index}: what an earlier run wrote when the output
    folder is also an input folder. `stems` are the stem names; `fields` the other fields'
    values but track (each file's own) and index (any)."""
    formatter = string.Formatter()

    def text(value: str, spec: str, conversion: Optional[str]) -> str:  # as target_path writes it
        return formatter.format_field(formatter.convert_field(safe_part(value), conversion), spec)

    pattern, track_fields = [], []
    try:
        for literal, field, spec, conversion in formatter.parse(template):
            pattern.append(re.escape(literal))
            if field == "track":
                pattern.append(f"(?P<t{len(track_fields)}>[^/]+)")
                track_fields.append((spec, conversion))
            elif field == "stem":
                pattern.append("(?:" + "|".join(re.escape(text(s, spec, conversion)) for s in stems) + ")")
            elif field == "index":
                pattern.append("[^/]*")
            elif field is not None:
                pattern.append(re.escape(text(str(fields[field]), spec, conversion)))
    except (ValueError, TypeError, KeyError):  # a bad template: check_template says why
        return set()
    from .reading import resolved  # a link loop among the files does not raise

    regex = re.compile("".join(pattern))
    owners: Dict[tuple, Set[Path]] = {}
    for f in files:
        key = tuple(text(f.stem, spec, conversion) for spec, conversion in track_fields)
        owners.setdefault(key, set()).add(resolved(f))
    root, outputs = resolved(out_dir), set()
    for f in files:
        where = resolved(f)
        if root not in where.parents:
            continue
        match = regex.fullmatch(where.relative_to(root).as_posix())
        if match and owners.get(tuple(match.group(f"t{i}") for i in range(len(track_fields))), set()) - {where}:
            outputs.add(where)
    return outputs


def check_output_folder(out_dir: Path) -> None:
    for p in (out_dir, *out_dir.parents):
        if p.is_symlink() and not p.exists():  # resolving it would raise: say what it is
            raise ExportError(
                f"output folder {out_dir}: {p} is a symbolic link that leads "
                "nowhere (a loop, or a missing target); choose another output folder"
            )
        if p.exists():
            if not p.is_dir():
                raise ExportError(f"output folder {out_dir}: {p} is a file, not a folder; choose another output folder")
            return


def check_targets(
    plan: Mapping[Path, Sequence[Path]], inputs: Iterable[Path], hint: str = "put {index} in the name template"
) -> None:
    """Refuse, before anything is written, targets that two inputs share (the second
    would skip or overwrite the first) and targets that are inputs."""
    owner: Dict[Path, Path] = {}
    for source, targets in plan.items():
        for t in targets:
            if t in owner and owner[t] != source:
                raise ExportError(f"{owner[t]} and {source} would both write {t}; {hint}")
            owner[t] = source
    from .reading import resolved

    sources = {resolved(Path(i)) for i in inputs}
    for t, source in owner.items():
        if t in sources:
            raise ExportError(f"{source}: would overwrite the input {t}; choose another output folder or name")


# Longest file name, in bytes, on the filesystems stemforge writes to (ext4, APFS, NTFS, ...).
NAME_MAX = 255


def partial_path(target: Path) -> Path:
    """Hidden, next to the target, with the target's suffix (which picks the format). A
    name that would be longer than NAME_MAX bytes, though the target's is not, keeps the
    start of the target's name and a digest of all of it, so that it stays unique."""
    name = f".{target.stem}.partial{target.suffix}"
    if len(os.fsencode(name)) <= NAME_MAX:
        return target.with_name(name)
    # of the stem alone: every format's partial of one output has the same start
    tail = f"~{hashlib.sha1(os.fsencode(target.stem)).hexdigest()[:12]}.partial{target.suffix}"
    head = target.stem
    while head and len(os.fsencode(f".{head}{tail}")) > NAME_MAX:
        head = head[:-1]
    return target.with_name(f".{head}{tail}")


# pedalboard's encoders say only "Unable to write data to audio file." (and the Ogg Vorbis
# one says nothing): a failed or short write with less free space than this left is a
# full disk. A block of stereo float audio takes 512 KiB.
FULL_BELOW = 1 << 20


def disk_full(target: Path, error: BaseException, guess: bool = False) -> Optional[DiskFull]:
    """A DiskFull that says where, if `error` (writing `target`) is a full disk: an OSError
    that says so, or with `guess` (an encoder's error, which does not say) any error while
    less than FULL_BELOW bytes are free there; else None."""
    said = isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
    folder = next((p for p in (target.parent, *target.parent.parents) if p.exists()), None)
    try:
        free = shutil.disk_usage(folder).free if folder is not None else None
    except OSError:
        free = None
    if not said and not (guess and free is not None and free < FULL_BELOW):
        return None
    left = f" ({free} bytes free)" if free is not None else ""
    return DiskFull(
        errno.ENOSPC,
        f"the disk holding {folder} is full{left}: {target.name} could "
        "not be written there; free some space on it or choose another output "
        "folder (no partial file was left)",
    )


def remove_partials(target: Path, suffixes: Iterable[str]) -> None:
    """Remove what a killed run left for `target` in any of the formats `suffixes` name:
    the hidden partial files of the same output (folder and name) under each suffix."""
    for suffix in suffixes:
        partial_path(target.with_suffix(suffix)).unlink(missing_ok=True)


def _make_parent(target: Path, created: List[Path]) -> None:
    """mkdir -p, remembering the folders made so that an abort can remove them again."""
    missing = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    created.extend(missing)


def _remove_empty(folders: Sequence[Path]) -> None:
    for d in folders:  # deepest first, as _make_parent lists them
        try:
            d.rmdir()
        except OSError:
            pass


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield the partial file to write; rename it to `target` when the block ends, or
    remove it (and folders made for it) if the block raises."""
    created: List[Path] = []
    _make_parent(target, created)
    partial = partial_path(target)
    try:
        yield partial
        os.replace(partial, target)
    except BaseException as e:
        partial.unlink(missing_ok=True)
        _remove_empty(created)
        full = disk_full(target, e)
        if full is not None:
            raise full from None
        raise


def write_text(target: Path, text: str) -> Path:
    with atomic_path(target) as partial:
        partial.write_text(text)
    return target


class StemWriter:
    """Writes named audio outputs atomically: all renamed on `commit`, or none.

    Every block is checked before it is written: NaN or Inf (a plugin or model
    that blew up) fails the whole file with an ExportError naming `stage`, what
    made the audio; `clipping()` says which outputs went above 0 dBFS in a format
    that cannot store it (all but 32-bit float WAV). A full disk is a DiskFull that
    says where, and `commit` renames only files that hold every sample written. As a
    context manager it aborts (removes its partial files) when the block raises,
    Ctrl-C included."""

    def __init__(
        self,
        targets: Dict[str, Path],
        sample_rate: int,
        channels: int,
        bit_depth: Optional[int] = None,
        stage: str = "the processing",
    ):
        self.targets = targets
        self.stage = stage
        self.partials = {s: partial_path(t) for s, t in targets.items()}
        self._written = {s: 0 for s in targets}
        self._peaks: Dict[str, float] = {}  # outputs whose format clips at 0 dBFS: their peak
        self._format = ""
        self._files: Dict[str, AudioFile] = {}
        self._created: List[Path] = []
        try:
            for s, p in self.partials.items():
                fmt = p.suffix.lstrip(".").lower()
                depth = check_format(fmt, bit_depth)
                if not (fmt == "wav" and depth == 32):  # integers (and Vorbis) stop at 0 dBFS
                    self._peaks[s] = 0.0
                    self._format = f"{fmt} {depth}-bit" if depth else fmt
                try:
                    _make_parent(p, self._created)
                    self._files[s] = AudioFile(
                        str(p), "w", sample_rate, channels, **({"bit_depth": depth} if depth else {})
                    )
                except (OSError, RuntimeError) as e:
                    raise disk_full(p, e, guess=True) or e
        except BaseException:
            self.abort()
            raise

    def __enter__(self) -> "StemWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.abort()

    def write(self, parts: Dict[str, np.ndarray]) -> None:
        for s, audio in parts.items():  # all checked before any is written
            if not np.isfinite(audio).all():
                sample, channel = np.argwhere(~np.isfinite(audio.T))[0]  # the earliest sample
                raise ExportError(
                    f"{self.stage} gave NaN or Inf for {self.targets[s].name} (first at "
                    f"sample {self._written[s] + sample}, channel {channel}); the "
                    "file was not written"
                )
        for s, audio in parts.items():
            if audio.shape[1]:
                if s in self._peaks:
                    self._peaks[s] = max(self._peaks[s], float(np.abs(audio).max()))
                try:
                    self._files[s].write(audio)
                except (OSError, RuntimeError) as e:
                    raise disk_full(self.partials[s], e, guess=True) or e
                self._written[s] += audio.shape[1]

    def clipping(self) -> str:
        """A warning if an output went above 0 dBFS in a format that clips it (the stems
        then no longer add up to the input there), else ""."""
        over = {s: peak for s, peak in self._peaks.items() if peak > 1.0}
        if not over:
            return ""
        peaks = ", ".join(
            f"{self.targets[s].name} peaks at {p:.2f} ({20 * np.log10(p):+.1f} dBFS)" for s, p in over.items()
        )
        return (
            f"clipped at 0 dBFS: {peaks}; {self._format} stores nothing above 0 dBFS, so "
            "the outputs no longer add up to the input there. 32-bit float WAV (format wav, "
            "bit depth 32: the default) keeps it, or lower the gain first"
        )

    def _close(self) -> None:
        files, self._files = self._files, {}
        failed = None
        for s, f in files.items():
            try:
                f.close()
            except (OSError, RuntimeError) as e:
                failed = failed or disk_full(self.partials[s], e, guess=True) or e
        if failed is not None:
            raise failed

    def _check_written(self) -> None:
        """Each closed file holds every sample written: an encoder that could not write
        (the Ogg Vorbis one, on a full disk) does not always say so."""
        for s, p in self.partials.items():
            try:
                with AudioFile(str(p)) as f:
                    held = f.frames
            except (OSError, RuntimeError, ValueError):
                held = 0
            if held != self._written[s]:
                short = RuntimeError(f"{self.targets[s]}: the file written holds {held} of {self._written[s]} samples")
                raise disk_full(p, short, guess=True) or short

    def commit(self) -> List[Path]:
        self._close()
        self._check_written()
        for s, target in self.targets.items():
            os.replace(self.partials[s], target)
        return list(self.targets.values())

    def abort(self) -> None:
        try:
            self._close()
        except (OSError, RuntimeError):  # removing what was written is all that is left to do
            pass
        for p in self.partials.values():
            p.unlink(missing_ok=True)
        _remove_empty(self._created)
