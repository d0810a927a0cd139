"""Writing model files: a module scripted to TorchScript with its metadata (the contract's
``stemforge.json``), written atomically and reproducibly. build.py and the importers write
with it; `stemforge.core.loading` reads what it writes.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Union

from ..core.contract import METADATA_FILE, ModelInfo
from .writing import atomic_path

if TYPE_CHECKING:
    import torch


def save_model(module: torch.nn.Module, info: ModelInfo, path: Union[str, os.PathLike]) -> None:
    """Script `module` and write it with its metadata (used by build.py and importers).

    The file depends on the module alone, not on where the sources or torch live:
    see `_reproducible_archive`.
    """
    import torch  # io imports torch only here, when a model file is written

    scripted = module if isinstance(module, torch.jit.ScriptModule) else torch.jit.script(module)
    path = Path(path)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer, _extra_files={METADATA_FILE: info.to_json()})
    with atomic_path(path) as partial:
        partial.write_bytes(_reproducible_archive(buffer.getvalue(), path.stem))


def _reproducible_archive(raw: bytes, root: str) -> bytes:
    """Rewrite a TorchScript archive so that equal modules give equal bytes.

    torch writes *.debug_pkl records holding absolute paths of the sources (this
    checkout, torch's install) and a serialization_id derived from them. Those
    records only serve tracebacks, so they are dropped; the id becomes a digest of
    the rest; records keep their order, no timestamps, and torch's 64-byte alignment.
    """
    src = zipfile.ZipFile(io.BytesIO(raw))
    records = []
    for name in src.namelist():
        if name.endswith(".debug_pkl") or name.endswith("/.data/serialization_id"):
            continue
        records.append((f"{root}/{name.split('/', 1)[1]}", src.read(name)))
    digest = hashlib.sha256(b"".join(n.encode() + b"\0" + d for n, d in records)).hexdigest()
    records.append((f"{root}/.data/serialization_id", str(int(digest, 16))[:40].encode()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for name, data in records:
            header = 30 + len(name.encode()) + 4  # local header, name, extra field's own header
            pad = -(out.tell() + header) % 64
            zinfo = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zinfo.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
            dst.writestr(zinfo, data)
    return out.getvalue()
