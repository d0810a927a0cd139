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

Everything TorchScript-specific in loading lives here, so that another artifact format
(``torch.export``) can be added by teaching this module to load it. The metadata and its
checks are `stemforge.core.contract`'s (torch-free), where the names are looked up is
`stemforge.core.lookup`'s, and build.py and the importers write model files with
`stemforge.io.model_files.save_model`.

>>> model = load_model("models/fixture-stream.ts")   # doctest: +SKIP
>>> model.name, model.stems, model.sample_rate, model.channels  # doctest: +SKIP
('fixture-stream', ('drums', 'bass', 'other', 'vocals'), 44100, 2)
"""

from __future__ import annotations

import os
import threading
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional, Union

import torch

from .contract import METADATA_FILE, ModelError, ModelInfo
from .lookup import resolve


def check_threads(threads: Optional[int]) -> Optional[int]:
    """`threads` if it is None or a whole number of at least 1 (True is not a count)."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
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

    def __init__(self, module: torch.jit.ScriptModule, info: ModelInfo, path: Path, device: str = "cpu"):
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
        return (
            f"<stemforge.Model {self.name} v{self.info.version} ({self.kind}{untrained}): "
            f"{'/'.join(self.stems)} at {self.sample_rate} Hz, {self.channels} ch>"
        )

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
            raise ModelError(
                f"{where}: the model failed on a test input ({type(e).__name__}: {str(e).strip().splitlines()[-1]})"
            ) from e
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != expected:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ModelError(
                f"{where}: the model returns shape {got}, the contract needs "
                f"{expected} (batch, stems, channels, samples)"
            )
        if not bool(torch.isfinite(y).all()):
            raise ModelError(f"{where}: the model returns NaN or Inf on silence")


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
        raise ModelError(
            f"{where}: torch.jit.load cannot read it ({type(e).__name__}: {str(e).strip().splitlines()[0]})"
        ) from e
    if not extra[METADATA_FILE]:
        raise ModelError(
            f"{where}: no {METADATA_FILE} metadata inside; build model files with build.py or stemforge's importers"
        )
    info = ModelInfo.from_json(extra[METADATA_FILE], where)
    if info.kind == "streaming" and not hasattr(module, "initial_state"):
        raise ModelError(f"{where}: a streaming model must export initial_state(batch)")
    module.eval()
    model = Model(module, info, path, device)
    model.check()
    return model
