"""StemSeparator: a one-in, one-out processor with pedalboard's call semantics.

Three ways to drive it, one result:

- offline, ``sep(audio, sr)``: the output has the input's shape, aligned;
- streaming, ``sep.process(chunk, sr, reset=False)`` then ``sep.flush()``:
  aligned audio as it becomes available; concatenated, the offline output.
  Model calls are batched for throughput (close to the offline cost), so the
  output may trail the input by up to 32768 model samples (0.74 s at
  44.1 kHz) more than in real time;
- real time, ``sep.process_block(block, sr)``: exactly ``len(block)`` samples,
  the offline output delayed by ``sep.latency_samples``, like a DAW plugin. With
  ``realtime=True`` the block never waits for the model: it runs in a worker
  thread (`realtime.DecoupledEngine`), and a hop whose stems are not ready when
  due goes whole to ``other`` (a miss, counted in ``sep.misses``).

Away from the model's rate all three resample with the same soxr settings
(``resampling``, the REALTIME policy by default) so that they stay one result;
`StemSplitter` and `separate` (whole files) take the OFFLINE policy (soxr HQ).
Both are named in `policy`.

>>> sep = StemSeparator("fixture-stream", stem="vocals")    # doctest: +SKIP
>>> sep(np.zeros((2, 44100), np.float32), 44100).shape      # doctest: +SKIP
(2, 44100)
"""

from __future__ import annotations

import functools
import threading
from typing import Callable, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from .fifo import SampleFifo
from .layout import (
    CHANNELS_FIRST,
    MONO_1D,
    check_array,
    check_channels,
    check_finite,
    check_layout,
    from_channels_first,
    to_channels_first,
)
from .loading import Model, check_threads, load_model
from .native import NativeEngine, engine_library
from .native import unavailable as native_unavailable
from .pipeline import Pipeline, realtime_headroom
from .policy import OFFLINE, REALTIME
from .resample import check_rate, check_resampling
from .stats import track_stats

ModelLike = Union[Model, str, None]

BUSY = (
    "this StemSeparator is already processing a call in another thread; a processor holds "
    "one stream's state, so concurrent calls would corrupt each other's audio: give each "
    "thread its own StemSeparator (they can share one loaded model: "
    "StemSeparator(stemforge.load_model(...), ...))"
)


def _one_thread_at_a_time(method: Callable) -> Callable:
    """Refuse a call while another thread is inside one (`BUSY`), instead of letting two
    threads interleave one stream's state; the thread inside may call on (re-entrant)."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(BUSY)
        try:
            return method(self, *args, **kwargs)
        finally:
            self._busy.release()

    return call


ENGINES = ("auto", "python", "native")


def one_hop_block(info, host_rate: int, headroom: Optional[int] = None) -> int:
    """The longest host block whose real-time headroom is `headroom` (None: one hop): the native
    engine's block size when none was prepared (Python's engine then takes `headroom` as it is,
    `realtime_headroom`), so that both engines have one latency."""
    wanted = info.hop if headroom is None else headroom
    n = max(1, int(np.ceil(wanted * host_rate / info.sample_rate)))
    while n > 1 and realtime_headroom(info, host_rate, n, headroom) > wanted:
        n -= 1
    return n


def check_engine(engine: str, realtime: bool, resampling: str, device: str) -> str:
    """The engine this processor runs: `engine` if its settings allow it (the native engine
    has one resampling policy and the CPU, and needs a built plugin); "auto" resolves to
    "native" where it can run, else "python"."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    unsupported = [
        what
        for what, bad in (
            ("realtime=True", not realtime),
            (f"resampling={REALTIME!r}", resampling != REALTIME),
            ("device='cpu'", device != "cpu"),
        )
        if bad
    ]
    if engine == "auto":
        return "python" if unsupported or native_unavailable() else "native"
    if engine == "native" and unsupported:
        raise ValueError(
            f"engine='native' (the plugin's real-time engine) needs {', '.join(unsupported)}; "
            "use engine='python' for other settings"
        )
    return engine


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the system tells it)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def as_model(model: ModelLike, device: str = "cpu") -> Model:
    return model if isinstance(model, Model) else load_model(model, device=device)


def residual_stem(model: Model, residual: Optional[str]) -> Optional[str]:
    """Which stem takes ``input - sum(stems)``; "auto": `other` for models whose masks
    sum to the mix (the residual is then only what resampling lost), else none."""
    if residual == "auto":
        return "other" if model.info.sums_to_mix and "other" in model.stems else None
    if residual is not None and residual not in model.stems:
        raise ValueError(f"residual stem {residual!r} is not one of the model's stems {model.stems}")
    return residual


# The largest gain a stem may take: +60 dB is beyond any mix, and keeps audio of a
# normal level far below float32's overflow (a gain of 1e40 wrote Inf).
MAX_GAIN = 1000.0


def output_weights(
    model: Model, stem: Optional[str], gains: Optional[Mapping[str, float]], residual: Optional[str]
) -> Tuple[np.ndarray, float]:
    """The (stems,) weights and the input's weight of the single output."""
    names = model.stems
    if stem is not None and gains is not None:
        raise ValueError("give either stem= (one stem) or gains= (a weighted sum), not both")
    if stem is not None:
        if stem not in names:
            raise ValueError(f"unknown stem {stem!r}; this model has {', '.join(names)}")
        gain_of = {s: float(s == stem) for s in names}
    else:
        gains = dict(gains or {})
        unknown = set(gains) - set(names)
        if unknown:
            raise ValueError(
                f"unknown stem(s) in gains: {', '.join(sorted(unknown))}; this model has {', '.join(names)}"
            )
        for s, g in gains.items():  # a NaN or huge gain would write NaN or Inf in every sample
            if (
                isinstance(g, bool)
                or not isinstance(g, (int, float, np.integer, np.floating))
                or not np.isfinite(g)
                or abs(g) > MAX_GAIN
            ):
                raise ValueError(
                    f"gain {g!r} for {s}: a gain is a finite number within "
                    f"+-{MAX_GAIN:g} (+60 dB); 0.0 mutes a stem, 1.0 keeps it as it is"
                )
        gain_of = {s: float(gains.get(s, 1.0)) for s in names}
    weights = np.array([gain_of[s] for s in names], np.float32)
    residual = residual_stem(model, residual)
    if residual is None:
        return weights, 0.0
    # g_r * (x - sum(stems)) + sum(g_s * stems) = g_r * x + sum((g_s - g_r) * stems)
    g_r = gain_of[residual]
    return weights - g_r, g_r


class StemSeparator:
    """Split the input into stems and output one stem or a weighted sum of them.

    stem: output this stem only, e.g. ``"vocals"`` for an acapella.
    gains: output the sum of all stems, each at its gain (1.0 if not named),
        e.g. ``{"vocals": 0.0}`` for a karaoke version; a gain is a finite number
        within +-MAX_GAIN (1000, +60 dB).
    residual: "auto", None or a stem name; which stem takes what the model's
        stems miss of the input (see `residual_stem`).
    threads: torch intra-op threads while this processor runs its model
        (restored afterwards); None leaves torch's setting alone.
    resampling: the REALTIME policy by default ("low-delay": soxr QQ in, LQ out, `live`
        within 25 ms at 48 and 96 kHz), or "hq" (soxr HQ, ~40 ms more latency away from
        the model's rate), used by all three call styles alike so that they give one result.
    realtime: False: `process_block` runs the model itself when a hop is complete
        (exact and deterministic; loops over files, tests). True, for a real-time
        callback: the model runs in a worker thread and `process_block` only moves
        samples; each hop's stems are due `headroom` model samples after the hop is
        complete (and at least one block later, see `prepare`), which adds that much
        latency; a hop not ready in time is delivered with its input whole in `other`
        (the stems still sum to the input) and counted in `misses`.
    headroom: real time only: model samples the worker has for a hop (None: one hop).
        Less headroom is less latency and more misses on a slow or busy machine
        (docs/performance.md measures the trade).
    engine: real time only: "native": the VST3's C++ engine (`native.NativeEngine`,
        libstemforge_engine.so from a built plugin, `python build.py plugin`): the same stems
        and latency as Python's, no GIL shared with a Python worker, and an audio thread
        that costs a fraction of Python's per block (docs/performance.md); it takes the
        REALTIME resampling, on the CPU. "python": `realtime.DecoupledEngine`, which runs
        anywhere. "auto" (the default): native where it can run, else python; `engine`
        then says which. `process` and offline calls run in Python whichever engine.
    spare_worker: real time with the native engine only: a second worker runs every hop too,
        on its own copy of the model's state (twice the model's CPU time, no more latency); a
        hop the first worker has not made in time comes from the spare if it has made it
        (counted in `rescued`), so a miss is a hop neither made in time. It helps where one
        worker is held back now and then while the other CPUs run (a virtual machine whose
        hypervisor stops one virtual CPU at a time; docs/performance.md). None (the default):
        on with the native engine in real time where this process may run on 2 CPUs or more
        (`spare_worker` then says which), as the plugin's `spare worker` switch is by default.

    One processor is one stream: a call made while another thread's call on the same
    processor is running raises RuntimeError (`BUSY`); threads each use their own.
    """

    is_effect = True
    is_instrument = False

    def __init__(
        self,
        model: ModelLike = None,
        *,
        stem: Optional[str] = None,
        gains: Optional[Mapping[str, float]] = None,
        residual: Optional[str] = "auto",
        device: str = "cpu",
        threads: Optional[int] = None,
        resampling: str = REALTIME,
        realtime: bool = False,
        headroom: Optional[int] = None,
        engine: str = "auto",
        spare_worker: Optional[bool] = None,
    ):
        check_threads(threads)
        if headroom is not None and (isinstance(headroom, bool) or not isinstance(headroom, int) or headroom < 1):
            raise ValueError(f"headroom must be a positive number of model samples or None, got {headroom!r}")
        self.realtime, self.headroom = bool(realtime), headroom
        self._block_size: Optional[int] = None
        self.resampling = check_resampling(resampling)
        self.engine = check_engine(engine, self.realtime, self.resampling, device)
        if spare_worker is None:  # one CPU: the spare would only take the first worker's time
            spare_worker = self.engine == "native" and usable_cpus() >= 2
        self.spare_worker = bool(spare_worker)
        if self.spare_worker and self.engine != "native":
            raise ValueError(
                "spare_worker=True needs realtime=True and the native engine (engine='native' "
                f"or 'auto' with a built plugin); this processor's engine is {self.engine!r}"
            )
        self.model = as_model(model, device)
        if self.engine == "native":
            engine_library()  # now, not in the first block: a missing or stale build says so here
        self._native: Optional[NativeEngine] = None  # engine="native": process_block's stream
        # NativeEngine.mixer: the engine's one call a block; `_fast` is it while a block stream runs
        self._mixer: Optional[Callable[[np.ndarray, float], Optional[np.ndarray]]] = None
        self._fast: Optional[Callable[[np.ndarray, float], Optional[np.ndarray]]] = None
        self.stem, self.gains, self.threads = stem, dict(gains) if gains else None, threads
        self._weights, self._direct = output_weights(self.model, stem, gains, residual)
        # a missed hop's input goes to `other` (with the residual, the stems sum to the input)
        stems = self.model.stems
        self._fallback = stems.index("other") if "other" in stems else len(stems) - 1
        self._pipeline: Optional[Pipeline] = None
        self._hint: Optional[Tuple[str, int]] = None  # layout of the stream in progress
        self._prepared: Optional[Tuple[str, int]] = None  # the layout prepare() was given
        self._layout = CHANNELS_FIRST  # the caller's layout on the latest call
        self._mode: Optional[str] = None  # "stream" or "block" while a stream is in progress
        self._delay_line: Optional[SampleFifo] = None
        # Taken without waiting by every call that touches the stream's state: a second
        # thread would interleave its samples with the first's (wrong audio, no error).
        self._busy = threading.RLock()
        # Models that normalise by the whole track (Demucs): offline calls measure their
        # input; streams use these (mean, std) if set, else a running estimate.
        self.track_stats: Optional[Tuple[float, float]] = None

    @property
    def needs_track_stats(self) -> bool:
        """Whether the model normalises by the whole input's statistics (Demucs): a caller
        streaming a file it can read twice sets `track_stats` first (render does)."""
        return self.model.info.input_normalization == "track"

    def __repr__(self) -> str:
        what = f"stem={self.stem!r}" if self.stem else f"gains={self.gains!r}"
        return f"<stemforge.StemSeparator {self.model.name} {what}>"

    # -- life cycle --------------------------------------------------------------------
    @_one_thread_at_a_time
    def prepare(
        self, sample_rate: float, channels: int = 2, layout: str = CHANNELS_FIRST, block_size: Optional[int] = None
    ) -> None:
        """Set up for streams at `sample_rate` with `channels` channels (JUCE's prepareToPlay)
        whose buffers are laid out as `layout` ("channels-first", pedalboard's (channels,
        samples), or "channels-last"). The layout then reads blocks too small to tell it by
        their shape: (2, 1) and (1, 2) are one stereo sample each, and square blocks take
        `layout`. It holds until the next prepare().

        block_size: the longest block `process_block` will get (JUCE's samplesPerBlock).
        With realtime=True, a hop's stems are due at least one such block after the block
        that completes the hop, so that the worker always has a block's time; None: blocks
        of up to a hop (longer ones may miss)."""
        check_layout(layout)
        if block_size is not None and (
            isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1
        ):
            raise ValueError(f"block_size must be a positive integer or None, got {block_size!r}")
        self._block_size = block_size
        self._build(sample_rate, channels)
        self._prepared = (layout, channels)
        self.reset()
        if self._pipeline.decoupled is not None:
            self._pipeline.decoupled.start()  # here, not in the first real-time block

    def _build(self, sample_rate: float, channels: int) -> None:
        rate = check_rate(sample_rate)
        check_channels(channels)
        if self.engine == "native":
            # process_block's stream; unprepared, the longest block that keeps the headroom asked
            # for (one hop by default), as Python's engine does: one latency whichever engine.
            # Longer blocks are split.
            longest = self._block_size or one_hop_block(self.model.info, rate, self.headroom)
            n = self._native
            if n is None or n.rate != rate or n.channels != channels or n.max_block != longest:
                if n is not None:
                    n.close()
                self._native = NativeEngine(
                    self.model.path, rate, channels, longest, headroom=self.headroom or 0, spare=self.spare_worker
                )
                self._mixer = self._native.mixer(self._weights, self._direct, self._busy, BUSY)
        headroom = None
        if self.realtime and self.engine == "python":
            headroom = realtime_headroom(self.model.info, rate, self._block_size, self.headroom, self.resampling)
        p = self._pipeline
        if p is None or p.host_rate != rate or p.host_channels != channels or p.headroom != headroom:
            if p is not None:
                p.reset()  # stops its worker, if it has one
            self._pipeline = Pipeline(
                self.model,
                rate,
                channels,
                self._weights[None],
                np.array([self._direct]),
                self.threads,
                self.resampling,
                headroom,
                self._fallback,
                headroom or 0,
            )

    @_one_thread_at_a_time
    def reset(self) -> None:
        """Forget the stream in progress; the next call starts a new one."""
        if self._pipeline is not None:
            self._pipeline.reset()
        if self._native is not None:
            self._native.reset()
        self._hint, self._mode, self._delay_line, self._fast = self._prepared, None, None, None

    @property
    def misses(self) -> int:
        """realtime=True: hops of the stream in progress whose stems were not ready when
        due, delivered with their input whole in `other` (0 otherwise)."""
        if self._native is not None:
            return self._native.misses
        return 0 if self._pipeline is None else self._pipeline.misses

    @property
    def rescued(self) -> int:
        """spare_worker=True: hops of the stream in progress the first worker had not made in
        time and the spare had, delivered from it (0 otherwise)."""
        return 0 if self._native is None else self._native.rescued

    def worker_times(self) -> Optional[dict]:
        """realtime=True with the native engine: its worker's account of its time in the stream
        in progress, in seconds (`native.WorkerTimes`: how long after the audio thread woke it each
        run started and how long it took, the runs that ended past the headroom, its model calls),
        to tell a miss's cause apart: the worker started late (on a VM, its CPU not run), ran long,
        or neither. None otherwise (the Python engine's worker keeps no such account)."""
        return None if self._native is None else self._native.worker_times()

    def wait_idle(self, timeout: Optional[float] = 60.0) -> bool:
        """realtime=True: wait until the model's worker has run every whole hop it was given,
        whichever engine (a host that pauses, and a test that must not depend on the machine's
        speed, call it between blocks). False if the worker failed or `timeout` seconds passed;
        True at once without a worker."""
        if self._native is not None:
            # milliseconds as the C int the engine takes (None: as long as it can say)
            return self._native.sync(min(int(1000 * timeout), 2**31 - 1) if timeout is not None else 2**31 - 1)
        decoupled = None if self._pipeline is None else self._pipeline.decoupled
        return True if decoupled is None else decoupled.wait_idle(timeout)

    @property
    def latency_samples(self) -> int:
        """Delay of `process_block`'s output, in host samples (known after prepare)."""
        if self._pipeline is None:
            raise RuntimeError(
                "latency_samples is known after prepare(sample_rate, channels) or the first process call"
            )
        return self._native.latency if self._native is not None else self._pipeline.latency

    # -- calls -------------------------------------------------------------------------
    def _begin(self, audio: np.ndarray, sample_rate: float, mode: str) -> Tuple[np.ndarray, str]:
        if self._mode is not None and self._mode != mode:
            raise RuntimeError(
                "a stream started with process(reset=False) cannot continue with "
                "process_block (or the reverse); call reset() first"
            )
        x, layout = to_channels_first(audio, self._hint)
        check_channels(x.shape[0])
        check_finite(x)
        p = self._pipeline
        # a stream in progress at its own rate needs no rate check (the per-block fast path)
        rate = p.host_rate if self._mode and sample_rate == p.host_rate else check_rate(sample_rate)
        if self._mode is None:
            if p is None or p.host_rate != rate or p.host_channels != x.shape[0]:
                self._build(rate, x.shape[0])
            self._pipeline.set_realtime(mode == "block")
            self._pipeline.set_track_stats(self.track_stats)
            self._mode = mode
            # the next blocks of this stream go straight to the engine (the mixer checks the rate)
            self._fast = self._mixer if mode == "block" else None
        elif p.host_rate != rate or p.host_channels != x.shape[0]:
            raise ValueError(
                f"the stream in progress is {p.host_channels} ch at {p.host_rate} Hz; "
                f"got {x.shape[0]} ch at {rate} Hz; call reset() to start a new one"
            )
        self._hint = (layout if layout != MONO_1D else CHANNELS_FIRST, x.shape[0])
        self._layout = layout
        return x, layout

    @_one_thread_at_a_time
    def process(
        self, input_array: np.ndarray, sample_rate: float, buffer_size: int = 8192, reset: bool = True
    ) -> np.ndarray:
        """pedalboard's Plugin.process: offline (reset=True) or one chunk of a stream.

        buffer_size is accepted for pedalboard compatibility only: the engine
        blocks the audio by the model's hop or window and bounds each model
        call itself, so the result never depends on it.
        """
        check_array(input_array)
        if input_array.size == 0:
            return np.zeros(input_array.shape, np.float32)
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be positive, got {buffer_size}")
        if reset:
            self.reset()
        x, layout = self._begin(input_array, sample_rate, "stream")
        if reset and self._pipeline.needs_track_stats:  # the whole input is known: use it
            self._pipeline.set_track_stats(track_stats(x))
        y = self._pipeline.push(x)[0]
        if reset:
            y = np.concatenate([y, self._pipeline.flush()[0]], axis=1)
            self.reset()
        return from_channels_first(y, layout)

    __call__ = process

    @_one_thread_at_a_time
    def flush(self) -> np.ndarray:
        """End the stream: return the remaining aligned samples and reset."""
        if self._pipeline is None or self._mode != "stream":
            return np.zeros((0,), np.float32)
        y = self._pipeline.flush()[0]
        self.reset()
        return from_channels_first(y, self._layout)

    def process_block(self, block: np.ndarray, sample_rate: float) -> np.ndarray:
        """Real-time call: exactly len(block) samples out, delayed by latency_samples."""
        # A float32 block of the stream in progress, at its rate: one call into the plugin's
        # engine (`NativeEngine.mixer`, which takes `_busy` as the general path does), the same
        # samples as the general path gives. Nothing else runs here: on the audio thread, after
        # each block's sleep, every step of the interpreter is slow (issue 22).
        fast = self._fast
        if fast is not None:
            y = fast(block, sample_rate)
            if y is not None:
                return y
        return self._process_block(block, sample_rate)

    @_one_thread_at_a_time
    def _process_block(self, block: np.ndarray, sample_rate: float) -> np.ndarray:
        check_array(block)
        if block.size == 0:
            return np.zeros(block.shape, np.float32)
        x, layout = self._begin(block, sample_rate, "block")
        if self._native is not None:
            return from_channels_first(self._native_block(x), layout)
        if self._delay_line is None:
            self._delay_line = SampleFifo((x.shape[0],))
            self._delay_line.append(np.zeros((x.shape[0], self.latency_samples), np.float32))
        self._delay_line.append(self._pipeline.push(x)[0])
        if len(self._delay_line) < x.shape[1]:  # would mean latency_samples is wrong
            raise RuntimeError("internal error: the engine fell behind its reported latency")
        return from_channels_first(self._delay_line.pop(x.shape[1]), layout)

    def _native_block(self, x: np.ndarray) -> np.ndarray:
        """process_block through the plugin's engine: its stems and delayed input, weighted as
        `_weights` and `_direct` say (in pieces of at most the engine's longest block)."""
        native, out = self._native, np.empty(x.shape, np.float32)
        # Into `out` in place, a temporary only for a gain other than 0 or 1: this runs on the
        # audio thread (issue 22).
        direct, terms = self._direct, [(s, w) for s, w in enumerate(self._weights) if w != 0]
        for start in range(0, x.shape[1], native.max_block):
            stems, dry = native.process(x[:, start : start + native.max_block])
            y = out[:, start : start + stems.shape[-1]]
            if direct:
                np.multiply(dry, direct, out=y)
            else:
                y.fill(0.0)
            for s, w in terms:  # not tensordot: see Pipeline._mix_to_host
                if w == 1:
                    y += stems[s]
                else:
                    y += w * stems[s]
        return out


class StemSplitter:
    """Several outputs of one stream, block by block: the streaming core of `separate`
    and of file export.

    `stems` names model stems to output (a name or a list); `outputs` adds named weighted sums,
    e.g. ``{"no_vocals": {"vocals": 0.0}}`` (stems not named count 1.0, as in
    StemSeparator's gains). ``push`` returns what is complete, ``flush`` the
    rest; each is a dict of output name to (channels, samples) float32,
    aligned with the input.
    ``resampling`` is the OFFLINE policy by default (soxr HQ, for whole files); REALTIME
    ("low-delay") gives the samples StemSeparator and the plugin give by default.

    >>> splitter = StemSplitter("studio", 44100, 2)               # doctest: +SKIP
    >>> parts = [splitter.push(block) for block in blocks]          # doctest: +SKIP
    >>> parts.append(splitter.flush())                              # doctest: +SKIP
    """

    def __init__(
        self,
        model: ModelLike,
        sample_rate: float,
        channels: int,
        stems: Optional[list] = None,
        *,
        outputs: Optional[Mapping[str, Mapping[str, float]]] = None,
        residual: Optional[str] = "auto",
        device: str = "cpu",
        threads: Optional[int] = None,
        resampling: str = OFFLINE,
    ):
        check_threads(threads)
        stems = [stems] if isinstance(stems, str) else stems  # one stem's name, not its letters
        m = as_model(model, device)
        self.model = m
        wanted = list(m.stems) if stems is None and not outputs else list(stems or [])
        unknown = [s for s in wanted if s not in m.stems]
        if unknown:
            raise ValueError(f"unknown stem(s) {', '.join(unknown)}; this model has {', '.join(m.stems)}")
        check_channels(channels)
        gains = {s: {t: float(t == s) for t in m.stems} for s in wanted}
        gains.update(outputs or {})
        self.stems = list(gains)  # the output names, in order
        rows = [output_weights(m, None, g, residual) for g in gains.values()]
        self._pipeline = Pipeline(
            m,
            check_rate(sample_rate),
            channels,
            np.stack([w for w, _ in rows]),
            np.array([d for _, d in rows]),
            threads,
            resampling,
        )
        self._pipeline.set_realtime(False)

    @property
    def needs_track_stats(self) -> bool:
        """Whether the model normalises by the whole input's statistics (Demucs), so
        that a caller who knows the whole input should measure it first."""
        return self._pipeline.needs_track_stats

    def set_track_stats(self, stats: Optional[Tuple[float, float]]) -> None:
        """The whole input's (mean, std) (see `stats.track_stats`), when it is known
        before streaming, for models that normalise by it; None: a running estimate."""
        self._pipeline.set_track_stats(stats)

    def _named(self, y: np.ndarray) -> Dict[str, np.ndarray]:
        return {s: y[j] for j, s in enumerate(self.stems)}

    def push(self, x: np.ndarray) -> Dict[str, np.ndarray]:
        """(channels, n) float32 in; the outputs completed so far out."""
        check_finite(x)
        return self._named(self._pipeline.push(np.ascontiguousarray(x, np.float32)))

    def flush(self) -> Dict[str, np.ndarray]:
        return self._named(self._pipeline.flush())


def separate(
    audio: np.ndarray,
    sample_rate: float,
    model: ModelLike = None,
    stems: Optional[list] = None,
    *,
    residual: Optional[str] = "auto",
    device: str = "cpu",
    threads: Optional[int] = None,
    resampling: str = OFFLINE,
) -> Dict[str, np.ndarray]:
    """All stems of `audio`, offline, each aligned and of the input's shape.

    resampling: the OFFLINE policy by default (soxr HQ, for whole files), or REALTIME
    ("low-delay": what StemSeparator and the plugin use by default, so that their stems
    can be compared sample for sample); see `policy`.

    With residual="auto" and a model whose masks sum to the mix, ``other`` also
    takes what resampling loses, so the stems add up to the input exactly.

    >>> stems = separate(mix, 44100, "fixture-stream")          # doctest: +SKIP
    >>> sorted(stems)                                            # doctest: +SKIP
    ['bass', 'drums', 'other', 'vocals']
    """
    check_array(audio)
    if audio.size == 0:
        names = StemSplitter(model, sample_rate, 1, stems, residual=residual, device=device).stems
        return {s: np.zeros(audio.shape, np.float32) for s in names}
    x, layout = to_channels_first(audio)
    check_channels(x.shape[0])
    splitter = StemSplitter(
        model, sample_rate, x.shape[0], stems, residual=residual, device=device, threads=threads, resampling=resampling
    )
    if splitter.needs_track_stats:
        splitter.set_track_stats(track_stats(x))
    head, tail = splitter.push(x), splitter.flush()
    return {s: from_channels_first(np.concatenate([head[s], tail[s]], axis=1), layout) for s in splitter.stems}
