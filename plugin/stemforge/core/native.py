"""The plugin's C++ engine from Python: `NativeEngine`, for `StemSeparator(engine="native")`.

The VST3's data path (resamplers, rings, the model in a worker thread, delay lines) lives once,
in C++, in ``libstemforge_engine.so`` beside the plugin in its bundle; EngineApi.h is its C
interface. This module calls that interface through ctypes, so that a Python real-time
callback costs what the plugin's does: the audio thread copies samples in and out and never
takes the GIL from a Python worker (Python's own `realtime.DecoupledEngine` shares it with its
worker, and its blocks cost several times more; docs/performance.md).

The library links libtorch by name. torch is imported first, so the library uses this
process's libtorch, and it must be the torch the plugin was built with: `engine_library()`
checks that before loading it.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import weakref
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

ENGINE_ABI = 8  # EngineApi.h's SF_ENGINE_ABI
RESET_NOT_READY = 2  # EngineApi.h's SF_RESET_NOT_READY
ERROR_CHARS = 1024
F32 = np.dtype(np.float32)
MAX_STEMS = 16
LIBRARY = "libstemforge_engine.so"
BINARIES = Path("Contents") / "x86_64-linux"


def bundle_candidates() -> List[Path]:
    """Where a built stemforge.vst3 may be, in order: $STEMFORGE_VST3, this checkout's
    build/vst3/stemforge.vst3, ~/.vst3/stemforge.vst3."""
    found = []
    if os.environ.get("STEMFORGE_VST3"):
        found.append(Path(os.environ["STEMFORGE_VST3"]).expanduser())
    found.append(Path(__file__).resolve().parents[3] / "build" / "vst3" / "stemforge.vst3")
    found.append(Path.home() / ".vst3" / "stemforge.vst3")
    return found


class EngineModelInfo(ctypes.Structure):
    """EngineApi.h's sf_model_info: what the engine read from a model file."""

    _fields_ = [
        ("name", ctypes.c_char * 128),
        ("version", ctypes.c_char * 64),
        ("kind", ctypes.c_char * 32),
        ("path", ctypes.c_char * 1024),
        ("sample_rate", ctypes.c_int),
        ("channels", ctypes.c_int),
        ("hop", ctypes.c_int),
        ("window", ctypes.c_int),
        ("lookahead", ctypes.c_int),
        ("num_stems", ctypes.c_int),
        ("stems", (ctypes.c_char * 64) * MAX_STEMS),
        ("sums_to_mix", ctypes.c_int),
        ("untrained", ctypes.c_int),
    ]


class WorkerTimes(ctypes.Structure):
    """EngineApi.h's sf_worker_times: the real-time worker's account of its time since it took up
    the last reset, in seconds: the runs the audio thread woke it for, how long after that call
    each started (`wait_*`) and how long it took (`run_*`), the runs that ended more than the
    headroom after the call (`late_runs`), and its model calls, one hop each (`call_*`). Means and
    maxima exact, p99s to 6 %. What the system saw of the late runs, summed: their time from the
    wake-up call to their end (`late_span`), of it the time the system's scheduler kept the worker
    runnable but not running (`late_sched_delay`, -1 where not known), and the worker's page
    faults (`late_faults`): a late run with neither was held back outside the system (on a VM,
    the hypervisor)."""

    _fields_ = [
        ("runs", ctypes.c_longlong),
        ("wait_mean", ctypes.c_double),
        ("wait_p99", ctypes.c_double),
        ("wait_max", ctypes.c_double),
        ("run_mean", ctypes.c_double),
        ("run_p99", ctypes.c_double),
        ("run_max", ctypes.c_double),
        ("late_runs", ctypes.c_longlong),
        ("calls", ctypes.c_longlong),
        ("call_mean", ctypes.c_double),
        ("call_p99", ctypes.c_double),
        ("call_max", ctypes.c_double),
        ("late_span", ctypes.c_double),
        ("late_sched_delay", ctypes.c_double),
        ("late_faults", ctypes.c_longlong),
    ]

    COUNTS = ("runs", "late_runs", "calls", "late_faults")  # the fields that are counts; the rest are seconds

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name, _ in self._fields_}


_FLOATS = ctypes.POINTER(ctypes.POINTER(ctypes.c_float))
_SIGNATURES = {
    "sf_abi": (ctypes.c_int, []),
    "sf_model_load": (
        ctypes.c_void_p,
        [ctypes.c_char_p, ctypes.POINTER(EngineModelInfo), ctypes.c_char_p, ctypes.c_size_t],
    ),
    "sf_model_free": (None, [ctypes.c_void_p]),
    "sf_engine_create": (
        ctypes.c_void_p,
        [ctypes.c_void_p] + [ctypes.c_int] * 5 + [ctypes.c_char_p, ctypes.c_size_t],
    ),
    "sf_engine_latency": (ctypes.c_int, [ctypes.c_void_p]),
    "sf_engine_misses": (ctypes.c_longlong, [ctypes.c_void_p]),
    "sf_engine_rescued": (ctypes.c_longlong, [ctypes.c_void_p]),
    "sf_engine_worker_times": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(WorkerTimes)]),
    "sf_model_latency": (ctypes.c_int, [ctypes.c_void_p] + [ctypes.c_int] * 4),
    "sf_engine_reset": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]),
    "sf_engine_refresh": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]),
    "sf_engine_process": (
        ctypes.c_int,
        [ctypes.c_void_p, _FLOATS, ctypes.c_int, _FLOATS, _FLOATS, ctypes.c_char_p, ctypes.c_size_t],
    ),
    "sf_engine_process_mixed": (
        ctypes.c_int,
        [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_int, ctypes.c_void_p]
        + [ctypes.c_float, ctypes.c_void_p, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_char_p, ctypes.c_size_t],
    ),
    "sf_engine_free": (None, [ctypes.c_void_p]),
    "sf_engine_sync": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
    "sf_engine_hold": (None, [ctypes.c_void_p, ctypes.c_int]),
}
_LOADED: Optional[ctypes.CDLL] = None
_MIXER: Optional[type] = None  # stemforge_mixer.Mixer from the same bundle, if built for this Python
_OPEN: "weakref.WeakSet[NativeEngine]" = weakref.WeakSet()


@atexit.register
def _close_engines() -> None:
    # An engine's worker still inside a model call when the interpreter finalises would run
    # on a torch runtime torn down under it (as realtime._halt_workers says of Python's).
    for engine in list(_OPEN):
        engine.close()


def engine_library() -> ctypes.CDLL:
    """The engine library of the first built bundle (`bundle_candidates`), loaded once;
    FileNotFoundError or RuntimeError saying what to do if there is none that fits."""
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    import torch  # first: the library then binds to this process's libtorch

    bundle = next((b for b in bundle_candidates() if (b / BINARIES / LIBRARY).is_file()), None)
    if bundle is None:
        looked = ", ".join(str(b) for b in bundle_candidates())
        raise FileNotFoundError(
            f"engine='native' needs the stemforge VST3's engine library, and no built bundle has "
            f"one (looked in {looked}); build it with `python build.py plugin` in a source "
            "checkout, or use engine='python'"
        )
    ours = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    theirs = bundle / BINARIES / "libtorch_cpu.so"
    if ours.is_file() and theirs.is_file() and ours.stat().st_size != theirs.stat().st_size:
        raise RuntimeError(
            f"the engine library in {bundle} was built with another torch than this Python's "
            f"({torch.__version__}); rebuild the plugin (`python build.py plugin`), or use engine='python'"
        )
    lib = ctypes.CDLL(str(bundle / BINARIES / LIBRARY), mode=os.RTLD_NOW | os.RTLD_LOCAL)
    # the interface's number first: a library of another interface may lack functions bound below
    lib.sf_abi.restype, lib.sf_abi.argtypes = _SIGNATURES["sf_abi"]
    if lib.sf_abi() != ENGINE_ABI:
        raise RuntimeError(
            f"the engine library in {bundle} does not match this stemforge (interface "
            f"{lib.sf_abi()}, expected {ENGINE_ABI}); rebuild the plugin (`python build.py plugin`)"
        )
    for name, (result, arguments) in _SIGNATURES.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = result, arguments
    _LOADED = lib
    global _MIXER
    _MIXER = load_mixer_type(bundle / BINARIES)
    return lib


def load_mixer_type(folder: Path) -> Optional[type]:
    """PythonMixer.cpp's Mixer, the per-block call into the engine, from `folder` (built by
    build.py plugin for the Python that ran it): None if there is none for this Python (a bundle
    built by another one; process_block then takes its general path, the same samples)."""
    import importlib.machinery
    import importlib.util
    import sysconfig

    path = folder / ("stemforge_mixer" + sysconfig.get_config_var("EXT_SUFFIX"))
    if not path.is_file():
        return None
    loader = importlib.machinery.ExtensionFileLoader("stemforge_mixer", str(path))
    spec = importlib.util.spec_from_file_location("stemforge_mixer", str(path), loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module.Mixer


def unavailable() -> Optional[str]:
    """Why engine='native' cannot run here (no built plugin, another torch...), or None."""
    try:
        engine_library()
    except (OSError, RuntimeError) as e:  # FileNotFoundError is an OSError
        return str(e)
    return None


def rows(array: np.ndarray) -> ctypes.Array:
    """Pointers to the rows of a float32 (rows, samples) array whose rows are each contiguous,
    as EngineApi.h's planar buffers (the array must outlive them)."""
    if array.dtype != np.float32 or array.ndim != 2 or array.strides[1] != array.itemsize:
        raise ValueError("internal error: the engine's buffers are float32 rows, each contiguous")
    row = ctypes.POINTER(ctypes.c_float)
    return (row * array.shape[0])(*(ctypes.cast(array[r].ctypes.data, row) for r in range(array.shape[0])))


class NativeEngine:
    """One stream of a model file at a host rate and channel count in the plugin's engine, in
    blocks of up to `max_block` samples. Real time (the default): the model in its worker thread,
    `process` never waits for it; a hop's stems are due `headroom` model samples after the hop is
    complete (0: one hop; at least a block's worth), and a hop not ready in time goes whole to
    `other` and is counted in `misses`. spare=True adds a spare worker that runs every hop too, on
    its own copy of the model's state (twice the model's CPU time): a hop the first worker has
    not made in time comes from the spare's if it has made it, counted in `rescued`.
    realtime=False: each block runs the model itself (as an offline render does)."""

    def __init__(
        self,
        model_path: Path,
        host_rate: int,
        channels: int,
        max_block: int,
        realtime: bool = True,
        headroom: int = 0,
        spare: bool = False,
    ):
        self._model = self._engine = None  # before anything can fail: close() reads them
        self._mixers: List = []
        self._lib = lib = engine_library()
        err = ctypes.create_string_buffer(ERROR_CHARS)
        info = EngineModelInfo()
        self._model = lib.sf_model_load(str(model_path).encode(), ctypes.byref(info), err, ERROR_CHARS)
        if not self._model:
            raise RuntimeError(err.value.decode(errors="replace") or f"the engine cannot load {model_path}")
        if spare and not realtime:
            raise ValueError("a spare worker is for real time only (realtime=True)")
        mode = 2 if spare else int(realtime)  # EngineApi.h: 0 offline, 1 a worker, 2 a worker and a spare
        self._engine = lib.sf_engine_create(
            self._model, host_rate, channels, max_block, mode, headroom, err, ERROR_CHARS
        )
        if not self._engine:
            raise RuntimeError(err.value.decode(errors="replace") or "the engine cannot set up the model")
        self.info, self.stems = info, info.num_stems
        self.rate, self.channels, self.max_block, self.headroom = host_rate, channels, max_block, headroom
        self.spare = bool(spare)
        self._err = err
        # preallocated once: the audio thread's calls then only copy
        self._in = np.zeros((channels, max_block), np.float32)
        self._stems = np.zeros((self.stems * channels, max_block), np.float32)
        self._dry = np.zeros((channels, max_block), np.float32)
        self._in_rows, self._stem_rows, self._dry_rows = rows(self._in), rows(self._stems), rows(self._dry)
        _OPEN.add(self)

    @property
    def latency(self) -> int:
        """Host samples between a sample's arrival and its stems' (the worker's headroom included)."""
        return self._lib.sf_engine_latency(self._engine)

    def model_latency(self, host_rate: int, max_block: int, realtime: bool, headroom: int = 0) -> int:
        """The latency an engine of this model would have at these settings (-1: not possible)."""
        return self._lib.sf_model_latency(self._model, host_rate, max_block, int(realtime), headroom)

    @property
    def misses(self) -> int:
        """Hops delivered without the model's stems since the engine was built or reset."""
        return self._lib.sf_engine_misses(self._engine)

    @property
    def rescued(self) -> int:
        """With a spare worker: hops it delivered because the first was late, since the engine was
        built or reset (0 without one)."""
        return self._lib.sf_engine_rescued(self._engine)

    def worker_times(self) -> Optional[dict]:
        """Real time: the (first) worker's account of its time since it took up the last reset (see
        WorkerTimes), so that a miss can be told apart: the worker started late, ran long, or
        neither. None for an offline engine (no worker)."""
        times = WorkerTimes()
        if self._lib.sf_engine_worker_times(self._engine, ctypes.byref(times)):
            return None
        return times.as_dict()

    def process(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(channels, n <= max_block) in: views of the stems (stems, channels, n) and of the input
        (channels, n), both delayed by `latency`; valid until the next call."""
        n = x.shape[1]
        self._in[:, :n] = x
        if self._lib.sf_engine_process(
            self._engine, self._in_rows, n, self._stem_rows, self._dry_rows, self._err, ERROR_CHARS
        ):
            raise RuntimeError(self._err.value.decode(errors="replace"))
        return self._stems[:, :n].reshape(self.stems, self.channels, n), self._dry[:, :n]

    def mixer(self, gains: np.ndarray, direct: float, lock: Any, busy: str) -> Optional[Callable]:
        """The audio thread's call, bound once: `mixer(block, sample_rate)` returns direct * the
        block + the sum of gains[s] * stem s, delayed by `latency`, in one call into the engine
        (the copies, the NaN check and the mix in C++). The block: a float32 ndarray with this
        engine's channels along one axis and 1 to `max_block` samples along the other, at this
        engine's rate; the call returns None for any other block (a square one included: its
        layout is the stream's to say), or one that holds NaN or Inf (nothing processed then),
        and raises RuntimeError(busy) while another thread holds `lock` (an RLock).

        A CPython extension type (PythonMixer.cpp): between two blocks' sleeps every step of the
        interpreter runs with cold caches, and through ctypes the call alone took a fifth of the
        model's time per hop on a 2-core VM (issue 22). None if the bundle has none for this
        Python (process_block then takes its general path)."""
        if _MIXER is None:
            return None
        gains = np.array(gains, np.float32).reshape(-1)  # the mixer's own: the engine reads it
        if gains.shape != (self.stems,):
            raise ValueError(f"internal error: {len(gains)} gains for a model of {self.stems} stems")
        process = ctypes.cast(self._lib.sf_engine_process_mixed, ctypes.c_void_p).value
        mixer = _MIXER(
            process, self._engine, gains, float(direct), self.channels, self.max_block, float(self.rate),
            np.ndarray, np.empty, F32, lock, busy,
        )  # fmt: skip
        self._mixers.append(mixer)
        return mixer

    def reset(self) -> None:
        """A new stream (off the audio thread: it prepares the spare state first)."""
        for _ in range(2):
            if self._lib.sf_engine_refresh(self._engine, self._err, ERROR_CHARS):
                raise RuntimeError(self._err.value.decode(errors="replace"))
            done = self._lib.sf_engine_reset(self._engine, self._err, ERROR_CHARS)
            if done == 0:
                return
            if done != RESET_NOT_READY:
                raise RuntimeError(self._err.value.decode(errors="replace"))
        raise RuntimeError("internal error: the engine's reset was not ready after a refresh")

    def sync(self, timeout_ms: int = 60000) -> bool:
        """For tests and diagnostics: wait until the worker has run every whole hop it was given."""
        return self._lib.sf_engine_sync(self._engine, timeout_ms) == 0

    def hold(self, held: bool, spare: Optional[bool] = None) -> None:
        """For tests: keep the worker from running until released: every hop due meanwhile is a
        miss, or, with a spare worker that is not held too (`spare`: as `held` if None), comes from it."""
        spare = held if spare is None else spare
        self._lib.sf_engine_hold(self._engine, int(bool(held)) | (2 if spare else 0))

    def close(self) -> None:
        """Stop the worker and free the engine and its model (the engine first: it uses the model)."""
        for mixer in self._mixers:
            mixer.close()  # before the engine it calls is freed
        if self._engine:
            self._lib.sf_engine_free(self._engine)
            self._engine = None
        if self._model:
            self._lib.sf_model_free(self._model)
            self._model = None

    def __del__(self) -> None:
        self.close()
