"""Writing outputs: which names, written atomically.

Names come from a template such as ``"{track}/{stem}.{ext}"`` (fields
``{track}``, ``{stem}``, ``{ext}``, ``{model}``, ``{preset}``, ``{index}``);
whatever the template or the track's name, a path that would leave the output
folder is refused. Each output is written to a hidden ``.partial`` file next
to its target and renamed only when complete.
"""
from __future__ import annotations

import os
import re
import string
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from pedalboard.io import AudioFile

from ..errors import ExportError
from .formats import BIT_DEPTHS

DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
TEMPLATE_FIELDS = {"track", "stem", "ext", "model", "preset", "index"}


def check_template(template: str, need_stem: bool = True) -> None:
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    unknown = fields - TEMPLATE_FIELDS
    if unknown:
        raise ExportError(f"unknown field(s) {', '.join('{' + f + '}' for f in sorted(unknown))} in "
                          f"--filename; use {', '.join('{' + f + '}' for f in sorted(TEMPLATE_FIELDS))}")
    if need_stem and "stem" not in fields:
        raise ExportError("--filename needs {stem}, or every stem would get the same name")


def safe_part(text: str) -> str:
    """A name usable as one path component: no separators, no leading dots."""
    text = re.sub(r"[/\\\x00]", "_", text).strip()
    return text.lstrip(".") or "_"


def target_path(out_dir: Path, template: str, **fields) -> Path:
    """The output file for `fields`, refused if it would land outside `out_dir`."""
    clean = {k: safe_part(str(v)) for k, v in fields.items()}
    relative = Path(template.format(**clean))
    root = out_dir.resolve()
    target = (root / relative).resolve()
    if relative.is_absolute() or root not in target.parents:
        raise ExportError(f"--filename {template!r} would write {target}, outside the output "
                          f"folder {root}")
    return target


def partial_path(target: Path) -> Path:
    """Hidden, next to the target, with the target's extension (which picks the format)."""
    return target.with_name(f".{target.stem}.partial{target.suffix}")


class StemWriter:
    """Writes named outputs to their targets atomically: all renamed on commit, or none."""

    def __init__(self, targets: Dict[str, Path], sample_rate: int, channels: int, fmt: str,
                 bit_depth: Optional[int]):
        self.targets = targets
        self.partials = {s: partial_path(t) for s, t in targets.items()}
        self._files = {}
        options = {"bit_depth": bit_depth} if bit_depth and BIT_DEPTHS[fmt] else {}
        try:
            for s, p in self.partials.items():
                p.parent.mkdir(parents=True, exist_ok=True)
                self._files[s] = AudioFile(str(p), "w", sample_rate, channels, **options)
        except BaseException:
            self.abort()
            raise

    def write(self, parts: Dict[str, np.ndarray]) -> None:
        for s, audio in parts.items():
            if audio.shape[1]:
                self._files[s].write(audio)

    def _close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}

    def commit(self) -> List[Path]:
        self._close()
        for s, target in self.targets.items():
            os.replace(self.partials[s], target)
        return list(self.targets.values())

    def abort(self) -> None:
        self._close()
        for p in self.partials.values():
            p.unlink(missing_ok=True)
