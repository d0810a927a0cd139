"""The one seam that loads model files.

A stemforge model is one TorchScript file (loaded with ``torch.jit.load``,
never unpickled) that carries its metadata as the extra file
``stemforge.json``. Two kinds fit the contract:

``streaming``
    ``initial_state(batch) -> List[Tensor]`` and
    ``forward(x[B, C, T], state) -> (stems[B, S, C, T], state)`` for ``T`` a
    multiple of ``hop``; the output is delayed by ``lookahead`` samples.
``window``
    ``forward(x[B, C, window]) -> stems[B, S, C, window]``, run by the engine
    over windows overlapping by ``overlap`` with triangular cross-fade weights
    (Demucs's ``apply_model``); ``tail`` says how chunks cut short by the end
    of the stream are shown to the model, ``input_normalization`` whether the
    engine normalises the input as Demucs does (see `engine.WindowEngine`).

Everything TorchScript-specific lives here, so that another artifact format
(``torch.export``) can be added by teaching this module to load it.

>>> model = load_model("models/fixture-stream.ts")   # doctest: +SKIP
>>> model.name, model.stems, model.sample_rate, model.channels  # doctest: +SKIP
('fixture-stream', ('drums', 'bass', 'other', 'vocals'), 44100, 2)
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import sys
import threading
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterator, List, Optional, Union

import torch

from .contract import CONTRACT, METADATA_FILE, ContractError, check_metadata

DEFAULT_MODEL = "studio"
PRESETS = ("live", "studio")  # the trained models that ship, loaded by name only


class ModelError(ValueError):
    """A model file that cannot be used; the message names the file and the cause."""


@dataclass(frozen=True)
class ModelInfo:
    """The metadata every model file carries."""

    name: str
    version: str
    kind: str  # "streaming" or "window"
    sample_rate: int
    stems: tuple
    channels: int
    lookahead: int  # samples of algorithmic latency at the model's rate
    context: int  # samples of past input that influence an output sample
    hop: int  # streaming: samples per step; window: the stride between windows
    window: int  # window kind: samples per window; streaming: equal to hop
    sums_to_mix: bool  # masks normalised across stems: the stems add up to the input
    description: str
    training_data: str
    license: str
    untrained: bool = False  # random weights: a test fixture, not a separator
    overlap: float = 0.0  # window kind: fraction of a window shared with the next
    transition_power: float = 1.0  # window kind: exponent of the triangular weights
    tail: str = "pad"  # window kind: what the model sees of a chunk (see engine.WindowEngine)
    padded_window: int = 0  # tail "center": samples the model sees around a chunk (>= window)
    input_normalization: str = "none"  # window kind: "track" = Demucs's (x - mean) / std

    def to_json(self) -> str:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["stems"] = list(self.stems)
        d["contract"] = CONTRACT
        return json.dumps(d, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: Union[str, bytes], where: str) -> "ModelInfo":
        if isinstance(text, bytes):  # as read from the archive
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ModelError(f"{where}: {METADATA_FILE} is not UTF-8 text ({e.reason} at byte "
                                 f"{e.start}); rebuild the file with build.py or stemforge's "
                                 "importers") from None
        try:  # the checks of contract.json, shared with the VST3 engine
            d = check_metadata(text)
        except ContractError as e:
            raise ModelError(f"{where}: {e}") from None
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["stems"] = tuple(d["stems"])
        return cls(**d)


def check_threads(threads: Optional[int]) -> Optional[int]:
    """`threads` if it is None or a whole number of at least 1 (True is not a count)."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    return threads


# torch keeps the intra-op count per thread, but a thread takes its first count from a
# process-wide default that every torch.set_num_threads also sets. So switching the count is
# done under a lock (held for the switch, never during a model call), and a thread that first
# enters while another thread's block runs restores the count outside the blocks, not the
# borrowed one it started with.
_switch_lock = threading.Lock()
_running = 0  # torch_threads blocks with a count, in progress in any thread
_outside = 0  # torch's count outside those blocks
_entered = threading.local()


@contextmanager
def torch_threads(threads: Optional[int]) -> Iterator[None]:
    """Run with `threads` intra-op threads, then restore the caller's setting.

    No lock around the model call: processors in several threads (on their own models or
    one shared model: its calls share no state) run at the same time, each with its count.
    """
    global _running, _outside
    if threads is None:
        with torch.inference_mode():
            yield
        return
    with _switch_lock:
        previous = torch.get_num_threads()  # also fixes this thread's count if it had none
        if _running == 0:
            _outside = previous
        elif not getattr(_entered, "before", False):
            previous = _outside
        _entered.before = True
        _running += 1
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            yield
    finally:
        with _switch_lock:
            _running -= 1
            torch.set_num_threads(previous)


class Model:
    """A loaded model file: its metadata and the calls the engine makes."""

    def __init__(self, module: torch.jit.ScriptModule, info: ModelInfo, path: Path,
                 device: str = "cpu"):
        self._module = module
        self.info = info
        self.path = path
        self.device = torch.device(device)

    name = property(lambda self: self.info.name)
    stems = property(lambda self: self.info.stems)
    sample_rate = property(lambda self: self.info.sample_rate)
    channels = property(lambda self: self.info.channels)
    kind = property(lambda self: self.info.kind)

    def __repr__(self) -> str:
        untrained = ", UNTRAINED test fixture" if self.info.untrained else ""
        return (f"<stemforge.Model {self.name} v{self.info.version} ({self.kind}{untrained}): "
                f"{'/'.join(self.stems)} at {self.sample_rate} Hz, {self.channels} ch>")

    def initial_state(self, batch: int) -> List[torch.Tensor]:
        return [s.to(self.device) for s in self._module.initial_state(batch)]

    def step(self, x: torch.Tensor, state: List[torch.Tensor]):
        """Streaming kind: (B, C, k*hop) -> ((B, S, C, k*hop), state)."""
        return self._module(x.to(self.device), state)

    def run_window(self, x: torch.Tensor) -> torch.Tensor:
        """Window kind: (B, C, n) -> (B, S, C, n); n is the window (padded_window for
        tail "center"; up to the window for tail "trim")."""
        return self._module(x.to(self.device))

    def check(self) -> None:
        """Run the model once on silence and verify its output shape."""
        info, where = self.info, str(self.path)
        s, c = len(info.stems), info.channels
        try:
            with torch_threads(None):
                if info.kind == "streaming":
                    state = self.initial_state(1)
                    y, state = self.step(torch.zeros(1, c, info.hop), state)
                    y, _ = self.step(torch.zeros(1, c, 2 * info.hop), state)
                    expected = (1, s, c, 2 * info.hop)
                else:
                    n = info.padded_window if info.tail == "center" else info.window
                    y = self.run_window(torch.zeros(1, c, n))
                    expected = (1, s, c, n)
        except Exception as e:  # the model's own code failed: say so at load time
            raise ModelError(f"{where}: the model failed on a test input "
                             f"({type(e).__name__}: {str(e).strip().splitlines()[-1]})") from e
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != expected:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ModelError(f"{where}: the model returns shape {got}, the contract needs "
                             f"{expected} (batch, stems, channels, samples)")
        if not bool(torch.isfinite(y).all()):
            raise ModelError(f"{where}: the model returns NaN or Inf on silence")


def stemforge_home() -> Path:
    """The user's stemforge folder: $STEMFORGE_HOME, else the platform's cache folder
    (~/.cache/stemforge, or $XDG_CACHE_HOME/stemforge; ~/Library/Caches/stemforge on macOS;
    %LOCALAPPDATA%\\stemforge on Windows). Pulled models are in its models/ folder."""
    if os.environ.get("STEMFORGE_HOME"):
        return Path(os.environ["STEMFORGE_HOME"]).expanduser()
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "stemforge"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "stemforge"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "stemforge"


def pulled_models_dir() -> Path:
    """Where `stemforge models pull` puts the models it imports (every face finds them by name)."""
    return stemforge_home() / "models"


def model_dirs() -> List[Path]:
    """Where model names are looked up, first match wins."""
    dirs = [Path(p) for p in os.environ.get("STEMFORGE_MODELS", "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parent
    dirs.append(here.parents[2] / "models")  # a source checkout (editable install)
    dirs.append(Path(sys.prefix) / "share" / "stemforge" / "models")  # a wheel install
    dirs.append(pulled_models_dir())  # `stemforge models pull`
    return dirs


def resolve(name_or_path: Union[str, os.PathLike, None]) -> Path:
    """A bare name ("studio") is looked up among the model folders first, so that a file or
    folder of that name in the current folder (an earlier ``-o studio``) does not shadow a
    preset; a name with a suffix or a folder in it is a path."""
    name = DEFAULT_MODEL if name_or_path is None else os.fspath(name_or_path)
    path = Path(name).expanduser()
    is_path = bool(path.suffix) or os.sep in name or "/" in name
    if not is_path:
        for d in model_dirs():
            candidate = d / f"{name}.ts"
            if candidate.is_file():
                return candidate
    if is_path or path.is_file():
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        return path
    searched = ", ".join(str(d) for d in model_dirs())
    hint = ""
    if name_or_path is None:
        hint = (f" No trained default model found: stemforge ships {DEFAULT_MODEL}.ts (in a checkout, "
                "`python build.py` builds it); reinstall stemforge, or name a model or a .ts file, e.g. "
                "fixture-stream (an UNTRAINED test fixture built by build.py, not a separator).")
    if not hint:
        hint = " `stemforge models list` shows the models there are and those you can pull."
    raise ModelError(f"model {name!r} not found (looked for {name}.ts in {searched}).{hint}")


def read_info(path: Union[str, os.PathLike]) -> ModelInfo:
    """A model file's metadata, read from its archive without loading the model."""
    where = str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(f"/extra/{METADATA_FILE}")]
            if not names:
                raise ModelError(f"{where}: no {METADATA_FILE} metadata inside")
            text = archive.read(names[0])
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelError(f"{where}: not a readable model file ({e})") from None
    return ModelInfo.from_json(text, where)


def load_model(name_or_path: Union[str, os.PathLike, None] = None, *, device: str = "cpu") -> Model:
    """Load a model by bundled name ("studio", "live", ...) or file path; None: the default.

    Every problem is reported here, naming the file, rather than mid-render.
    """
    path = resolve(name_or_path)
    where = str(path)
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{where}: not a TorchScript model file (not a zip archive)")
    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as e:
        raise ModelError(f"{where}: torch.jit.load cannot read it ({type(e).__name__}: "
                         f"{str(e).strip().splitlines()[0]})") from e
    if not extra[METADATA_FILE]:
        raise ModelError(f"{where}: no {METADATA_FILE} metadata inside; "
                         "build model files with build.py or stemforge's importers")
    info = ModelInfo.from_json(extra[METADATA_FILE], where)
    if info.kind == "streaming" and not hasattr(module, "initial_state"):
        raise ModelError(f"{where}: a streaming model must export initial_state(batch)")
    module.eval()
    model = Model(module, info, path, device)
    model.check()
    return model


def save_model(module: torch.nn.Module, info: ModelInfo, path: Union[str, os.PathLike]) -> None:
    """Script `module` and write it with its metadata (used by build.py and importers).

    The file depends on the module alone, not on where the sources or torch live:
    see `_reproducible_archive`.
    """
    scripted = module if isinstance(module, torch.jit.ScriptModule) else torch.jit.script(module)
    path = Path(path)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer, _extra_files={METADATA_FILE: info.to_json()})
    from ..io.writing import atomic_path
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
