"""Find the songs in a long recording: singing, not talk, silence or music alone.

The recording streams once through a separator (the `live` preset by
default: fast, and its vocals are what matters here), so memory does not
grow with its length; only one row of features per second is kept (a
3-hour stream: 10,800 rows). Per second:

- ``music``: the accompaniment's level (mix minus vocals), in dB relative to
  the recording's loud parts (its 95th percentile): songs have a band, talk
  between songs has none or quiet background music;
- ``voiced``: the share of 46 ms frames of the vocals stem with a clear pitch
  (normalised autocorrelation peak between 70 and 1000 Hz), over 3 s;
- ``held``: the mean length of voiced runs around that second, in seconds:
  singing holds notes (long runs), speech voices syllables (short runs).

The singing probability of a second is a product of soft thresholds
(logistic) on these three cues, so each is necessary: accompaniment with no
voice, or a voice with short syllables, is not singing. The songs then
follow the rules of the published stream-cutting system this grows out of,
each an option: smooth by a window mean, threshold at 0.5, merge songs whose
gap is at most ``merge_gap`` s unless the result would exceed ``max_song``
s, extend each edge while the smoothed probability stays at or above
``extend_above`` (intros and outros), and drop what is shorter than
``min_song`` s. Two refinements of those rules: gaps where the music went on
merge before gaps where it stopped (so the 6-minute cap splits songs sung
back to back at their pause, not inside one of them), and each edge is then
placed on a finer 3-s mean, as the 10-s window blurs it by seconds.

>>> songs = find_songs(probabilities)                      # doctest: +SKIP
>>> songs[0]                                               # doctest: +SKIP
Song(start=63.0, end=291.0)
"""

from __future__ import annotations

import csv
import functools
import io
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..io.sessions import FORMATS as SESSION_KINDS

FRAME_SECONDS = 1.0
PITCH_FRAME_SECONDS = 2048 / 44100  # 46 ms at any rate: over three periods of 70 Hz
F0_RANGE = (70.0, 1000.0)
VOICED_CORRELATION = 0.55  # normalised autocorrelation peak that counts as a pitch
PEAK_SHARE = 0.9  # the period: the first peak at least this share of the best one
LOUD_PERCENTILE = 95.0


@dataclass(frozen=True)
class Rules:
    """How frame probabilities become songs (the defaults are the published system's)."""

    smooth: float = 10.0  # window-mean smoothing, seconds
    threshold: float = 0.5
    merge_gap: float = 20.0  # merge songs separated by at most this (ballads dip mid-song)
    max_song: float = 360.0  # never merge beyond this (songs back to back stay two)
    extend_above: float = 0.4  # extend edges while the probability stays at or above this
    min_song: float = 30.0  # shorter detections are not songs
    edge_smooth: float = 3.0  # then place each edge on this finer mean (0: off)
    edge_reach: float = 10.0  # moving it at most this far, seconds

    def __post_init__(self) -> None:
        # Probabilities lie in [0, 1] and durations are not negative: anything else would
        # silently find no song, or every second, rather than say what is wrong.
        for name in ("threshold", "extend_above"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} {value:g}: a probability, between 0 and 1")
        for name in ("smooth", "merge_gap", "max_song", "min_song", "edge_smooth", "edge_reach"):
            value = getattr(self, name)
            if not value >= 0.0:
                raise ValueError(f"--{name.replace('_', '-')} {value:g}: seconds, at least 0")


# The rules a user sets from the command line, with their help.
RULE_HELP = {
    "smooth": "window-mean smoothing, s",
    "threshold": "song threshold (0-1)",
    "merge_gap": "merge songs this close, s",
    "max_song": "never merge beyond this, s",
    "extend_above": "extend edges while the probability is at least (0-1)",
    "min_song": "shorter detections are dropped, s",
}


@dataclass(frozen=True)
class Song:
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


# -- features ----------------------------------------------------------------------------


def pitch_frame(rate: float) -> Tuple[int, int]:
    """(frame, hop) in samples at `rate`: 46 ms and half of it whatever the rate (2048 and
    1024 samples at 44.1 kHz, 8359 and 4179 at 192 kHz)."""
    frame = int(round(PITCH_FRAME_SECONDS * rate))
    return frame, frame // 2


@functools.lru_cache(maxsize=8)
def _pitch_window(frame: int) -> Tuple[np.ndarray, np.ndarray]:
    """A Hann window of `frame` samples and its own autocorrelation, normalised: dividing
    by it makes a pure tone peak near 1 at any lag. Computed once per frame length."""
    window = np.hanning(frame)
    ac = np.correlate(window, window, "full")[frame - 1 :]
    return window, ac / ac[0]


def pitch_track(x: np.ndarray, rate: float) -> np.ndarray:
    """Per hop (23 ms) of mono `x`: its pitch in Hz where it has a clear one, else 0."""
    frame, hop = pitch_frame(rate)
    frames = 1 + (len(x) - frame) // hop if len(x) >= frame else 0
    if frames == 0:
        return np.zeros(0)
    window, window_ac = _pitch_window(frame)
    idx = np.arange(frame)[None] + hop * np.arange(frames)[:, None]
    f = x[idx] * window
    f = f - f.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(f, n=2 * frame)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:, :frame]
    # Lags of 1000 down to 70 Hz: under a third of the frame at any rate, where the window's
    # autocorrelation (the divisor) is still far from zero.
    lo, hi = int(rate / F0_RANGE[1]), min(int(rate / F0_RANGE[0]) + 1, frame // 2)
    norm = ac[:, lo:hi] / (ac[:, :1] + 1e-12) / window_ac[lo:hi]
    best = norm.max(axis=1)
    # A periodic voice peaks at its period and, nearly as high, at every multiple of it: the
    # period is the first peak that comes close to the best one (McLeod's rule), not the
    # multiple that rounding lags to whole samples happens to favour.
    peak = np.zeros(norm.shape, dtype=bool)
    peak[:, 1:-1] = (norm[:, 1:-1] >= norm[:, :-2]) & (norm[:, 1:-1] > norm[:, 2:])
    peak &= norm >= PEAK_SHARE * best[:, None]
    lag = lo + np.where(peak.any(axis=1), peak.argmax(axis=1), norm.argmax(axis=1))
    return np.where(best > VOICED_CORRELATION, rate / lag, 0.0)


class FeatureStream:
    """Per-second features of a stream of (mix, vocals) blocks, mono or multichannel."""

    def __init__(self, rate: float):
        self.rate = float(rate)
        self.second = int(round(rate * FRAME_SECONDS))
        self._mix = np.zeros(0, np.float32)
        self._vocals = np.zeros(0, np.float32)
        self.rows: List[tuple] = []  # (mix_db, accompaniment_db, vocals_db, voiced flags)

    def push(self, mix: np.ndarray, vocals: np.ndarray) -> None:
        self._mix = np.concatenate([self._mix, mix.mean(axis=0)])
        self._vocals = np.concatenate([self._vocals, vocals.mean(axis=0)])
        while len(self._mix) >= self.second:
            self._frame(self._mix[: self.second], self._vocals[: self.second])
            self._mix, self._vocals = self._mix[self.second :], self._vocals[self.second :]

    def flush(self) -> None:
        if len(self._mix) >= self.second // 4:  # a last part-second, if it is not a crumb
            pad = self.second - len(self._mix)
            self._frame(np.pad(self._mix, (0, pad)), np.pad(self._vocals, (0, pad)))
        self._mix = self._vocals = np.zeros(0, np.float32)

    def _frame(self, mix: np.ndarray, vocals: np.ndarray) -> None:
        def db(x):
            return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-10))

        f0 = pitch_track(vocals.astype(np.float64), self.rate)
        frame, hop = pitch_frame(self.rate)
        loud = np.array([db(vocals[i * hop : i * hop + frame]) for i in range(len(f0))])
        # A pitch in a frame far below the mix's level is leakage, not a voice.
        f0[loud <= db(mix) - 20] = 0.0
        self.rows.append((db(mix), db(mix - vocals), db(vocals), f0))

    def features(self) -> np.ndarray:
        """(seconds, 3): music (dB re the loud parts), voiced share, mean held run (s)."""
        if not self.rows:
            return np.zeros((0, 3))
        mix_db = np.array([r[0] for r in self.rows])
        acc_db = np.array([r[1] for r in self.rows])
        loud = np.percentile(mix_db, LOUD_PERCENTILE)
        pitches = [r[3] for r in self.rows]
        voiced = window_mean(np.array([np.mean(f > 0) if len(f) else 0.0 for f in pitches]), 3.0)
        held = held_runs(pitches, pitch_frame(self.rate)[1] / self.rate)
        return np.stack([acc_db - loud, voiced, held], axis=1)


def held_runs(pitches: Sequence[np.ndarray], hop_seconds: float, context: int = 2) -> np.ndarray:
    """Mean length (s) of the voiced runs around each second (+-`context` s); a single
    unvoiced frame inside a run (a drum hit masking the voice) does not end it. Sung
    notes make long runs, spoken syllables short ones. (Pitch continuity would be a
    finer cue, but autocorrelation pitch on a leaky vocals stem jumps octaves.)"""
    out = np.zeros(len(pitches))
    for t in range(len(pitches)):
        lo, hi = max(0, t - context), min(len(pitches), t + context + 1)
        v = np.concatenate([np.asarray(p) > 0 for p in pitches[lo:hi]])
        if len(v) > 2:
            v[1:-1] |= v[:-2] & v[2:]
        if not v.any():
            continue
        edges = np.diff(np.concatenate([[0], v.astype(np.int8), [0]]))
        runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
        out[t] = runs.mean() * hop_seconds
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def singing_probability(features: np.ndarray) -> np.ndarray:
    """Per second: accompaniment present x a voice present x notes held, each a soft
    threshold (centre, width) set on rendered songs and speech (bench/sections.py)."""
    music, voiced, held = features.T
    return sigmoid((music + 22.0) / 3.0) * sigmoid((voiced - 0.35) / 0.08) * sigmoid((held - 0.22) / 0.05)


# -- rules -------------------------------------------------------------------------------


def window_mean(p: np.ndarray, seconds: float) -> np.ndarray:
    k = max(1, int(round(seconds / FRAME_SECONDS)))
    if k == 1 or len(p) == 0:
        return p.copy()
    padded = np.pad(p, (k // 2, k - 1 - k // 2), mode="edge")
    return np.convolve(padded, np.ones(k) / k, mode="valid")


def runs_above(p: np.ndarray, threshold: float) -> List[List[int]]:
    above = np.concatenate([[False], p >= threshold, [False]])
    edges = np.diff(above.astype(np.int8))
    return [[int(a), int(b)] for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))]


def merge_segments(
    segments: List[List[int]], merge_gap: float, max_song: float, quiet: Optional[np.ndarray] = None
) -> List[List[int]]:
    """Merge neighbours across gaps of at most `merge_gap` s, never into something longer
    than `max_song` s. Gaps where the music went on (a breath, a solo, a ballad's quiet
    middle) merge before gaps where it stopped (`quiet`, per second), and shorter gaps
    before longer ones: so a song's own parts join first, and the cap then keeps two
    songs sung back to back apart at the pause between them."""
    merged = [list(seg) for seg in segments]
    while len(merged) > 1:
        candidates = []
        for i in range(len(merged) - 1):
            a, b = merged[i][1], merged[i + 1][0]
            if b - a <= merge_gap / FRAME_SECONDS and merged[i + 1][1] - merged[i][0] <= max_song / FRAME_SECONDS:
                stopped = bool(quiet is not None and np.any(quiet[a:b]))
                candidates.append((stopped, b - a, i))
        if not candidates:
            break
        i = min(candidates)[2]
        merged[i : i + 2] = [[merged[i][0], merged[i + 1][1]]]
    return merged


def find_songs(probability: np.ndarray, rules: Rules = Rules(), quiet: Optional[np.ndarray] = None) -> List[Song]:
    """Songs (seconds) from per-second singing probabilities, by the rules; `quiet` marks
    the seconds where the music stopped (see `merge_segments`)."""
    p = window_mean(np.asarray(probability, float), rules.smooth)
    merged = merge_segments(runs_above(p, rules.threshold), rules.merge_gap, rules.max_song, quiet)
    songs: List[Song] = []
    for i, (a, b) in enumerate(merged):
        # Extend into the gaps, never into the previous song as extended, nor the next.
        floor = int(round(songs[-1].end / FRAME_SECONDS)) if songs else 0
        ceiling = merged[i + 1][0] if i + 1 < len(merged) else len(p)
        while a > floor and p[a - 1] >= rules.extend_above:
            a -= 1
        while b < ceiling and p[b] >= rules.extend_above:
            b += 1
        if rules.edge_smooth > 0:
            a, b = refine_edges(probability, a, b, floor, ceiling, rules)
        if (b - a) * FRAME_SECONDS >= rules.min_song:
            songs.append(Song(a * FRAME_SECONDS, b * FRAME_SECONDS))
    return songs


def refine_edges(probability: np.ndarray, a: int, b: int, floor: int, ceiling: int, rules: Rules) -> tuple:
    """The 10-s mean finds songs but blurs their edges by seconds: move each edge, at
    most `edge_reach` s, to where a finer (`edge_smooth` s) mean of the probability
    crosses `extend_above`."""
    q = window_mean(np.asarray(probability, float), rules.edge_smooth)
    reach = int(round(rules.edge_reach / FRAME_SECONDS))
    a0, b0 = a, b
    while a < b - 1 and a < a0 + reach and q[a] < rules.extend_above:
        a += 1
    while a > max(floor, a0 - reach) and q[a - 1] >= rules.extend_above:
        a -= 1
    while b > a + 1 and b > b0 - reach and q[b - 1] < rules.extend_above:
        b -= 1
    while b < min(ceiling, b0 + reach) and q[b] >= rules.extend_above:
        b += 1
    return a, b


# -- the whole job -----------------------------------------------------------------------

QUIET_DB = -35.0  # music this far below the recording's loud parts has stopped


def analyse(
    blocks: Iterable[np.ndarray], rate: float, splitter, progress: Optional[Callable[[float], None]] = None
) -> tuple:
    """Per second of a stream of (channels, n) blocks: the singing probability, and
    whether the music has stopped; `splitter` is a StemSplitter with outputs "vocals"
    and "mix" (the mix it was given)."""
    features = FeatureStream(rate)
    done = 0
    for block in blocks:
        out = splitter.push(block)
        if out["vocals"].shape[1]:
            features.push(out["mix"], out["vocals"])
        done += block.shape[1]
        if progress:
            progress(done / rate)
    out = splitter.flush()
    features.push(out["mix"], out["vocals"])
    features.flush()
    table = features.features()
    return singing_probability(table), table[:, 0] < QUIET_DB


# -- outputs -----------------------------------------------------------------------------


def timestamp(seconds: float) -> str:
    """h-mm-ss for file names (sortable, no colons)."""
    s = int(round(seconds))
    return f"{s // 3600}h{s // 60 % 60:02d}m{s % 60:02d}s"


def audacity_labels(songs: List[Song]) -> str:
    return "".join(f"{s.start:.3f}\t{s.end:.3f}\tsong {i}\n" for i, s in enumerate(songs, 1))


def csv_text(songs: List[Song]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["song", "start_s", "end_s", "duration_s"])
    for i, s in enumerate(songs, 1):
        w.writerow([i, f"{s.start:.3f}", f"{s.end:.3f}", f"{s.duration:.3f}"])
    return out.getvalue()


def cue_sheet(songs: List[Song], audio: Path) -> str:
    """A CUE sheet with one track per song (INDEX 01 at its start, in mm:ss:ff, 75 frames/s)."""

    def msf(t: float) -> str:
        frames = int(round(t * 75))
        return f"{frames // 4500:02d}:{frames // 75 % 60:02d}:{frames % 75:02d}"

    kind = "WAVE" if audio.suffix.lower() in (".wav", ".aiff", ".aif", ".flac") else "MP3"
    lines = [f'TITLE "{audio.stem}"', f'FILE "{audio.name}" {kind}']
    for i, s in enumerate(songs, 1):
        lines += [
            f"  TRACK {i:02d} AUDIO",
            f'    TITLE "song {i} at {timestamp(s.start)}"',
            f"    INDEX 01 {msf(s.start)}",
        ]
    return "\n".join(lines) + "\n"


# -- a file, end to end ------------------------------------------------------------------

TEXT_OUTPUTS = {"labels": ".labels.txt", "csv": ".songs.csv", "cue": ".cue"}
OUTPUTS = tuple(TEXT_OUTPUTS) + tuple(SESSION_KINDS)


def split_file(
    audio: Path,
    out_dir: Path,
    model="live",
    rules: Rules = Rules(),
    outputs: Sequence[str] = ("labels", "csv", "cue"),
    cut: bool = False,
    fmt: str = "wav",
    bit_depth: Optional[int] = None,
    threads: Optional[int] = None,
    progress: Optional[Callable[[float, float], None]] = None,
    stop: Optional[threading.Event] = None,
    warn: Optional[Callable[[str], None]] = None,
) -> tuple:
    """Find the songs of the file `audio`, write `outputs` (and with `cut`, each song as
    its own file) to `out_dir`; returns (songs, written paths); `warn` hears what was
    written but not quite as asked (a song clipped at 0 dBFS). The file is read in
    blocks, twice with `cut`; nothing is written until the analysis is complete, and
    every file is written under a hidden name and renamed when whole."""
    from ..core.processor import StemSplitter
    from ..io.formats import check_format
    from ..io.reading import open_audio
    from ..io.sessions import SessionTrack, write_session
    from ..io.writing import StemWriter, check_output_folder, check_targets, write_text

    unknown = set(outputs) - set(OUTPUTS)
    if unknown:
        raise ValueError(f"unknown output(s) {', '.join(sorted(unknown))}; choose from {', '.join(OUTPUTS)}")
    bit_depth = check_format(fmt, bit_depth)
    check_output_folder(Path(out_dir))
    stem = audio.stem
    named = {
        kind: out_dir / f"{stem}{ext}" for kind, ext in {**TEXT_OUTPUTS, **SESSION_KINDS}.items() if kind in outputs
    }
    check_targets({audio: list(named.values())}, [audio])
    with open_audio(audio) as source:
        rate, channels, frames = source.sample_rate, source.channels, source.frames
        splitter = StemSplitter(model, rate, channels, ["vocals"], outputs={"mix": {}}, threads=threads)
        if splitter.needs_track_stats:
            splitter.set_track_stats(source.track_stats(stop))
        probability, quiet = analyse(
            source.blocks(stop),
            rate,
            splitter,
            None if progress is None else lambda done: progress(done, frames / rate),
        )
        songs = find_songs(probability, rules, quiet)
        texts = {
            "labels": lambda: audacity_labels(songs),
            "csv": lambda: csv_text(songs),
            "cue": lambda: cue_sheet(songs, audio),
        }
        regions = [(s.start, s.end, f"song {i}") for i, s in enumerate(songs, 1)]
        written = []
        for kind, target in named.items():
            if kind in texts:
                written.append(write_text(target, texts[kind]()))
            else:
                written.append(
                    write_session(kind, target, [SessionTrack(stem, audio)], rate, channels, frames, stem, regions)
                )
        if cut:
            for i, song in enumerate(songs, 1):
                name = f"{stem} song {i:02d} {timestamp(song.start)}-{timestamp(song.end)}.{fmt}"
                with StemWriter(
                    {"song": out_dir / name}, rate, channels, bit_depth, stage=f"the recording {audio.name}"
                ) as writer:
                    for block in source.blocks(stop, int(song.start * rate), int(song.end * rate)):
                        writer.write({"song": block})
                    written += writer.commit()
                if writer.clipping() and warn is not None:
                    warn(writer.clipping())
    return songs, written
