"""Train a MaskNet preset on the rendered corpus, on the CPU, resumably.

    python build.py train --preset live|studio [--minutes M] [--threads T]

Every step draws random 4-second segments and remixes them: each stem may
come from a different clip, with its own gain, and may be silent, so the
network sees far more mixtures than the corpus has clips. The mixture is the
exact sum of the stems. The loss compares the separated stems with the true
ones in the waveform and in the STFT magnitude.

Checkpoints go to <cache>/train/<run>/checkpoint.pt every few minutes and on
exit (with the remixer's and torch's random state); a new invocation resumes from
it, or a new run starts from the shipped weights in models/weights/. The learning
rate follows the step (warm-up, then cosine over --steps), never the wall clock, so
a resumed run continues the same schedule and a repeated run repeats it; --minutes
only ends an invocation early. weights/<preset>.json records the commit, the run's
whole configuration (remix shares, source weights, schedule, seed, steps) and a
manifest of the data it saw.
When the budget is spent, the weights are written to models/weights/<preset>.pt
for `python build.py` to turn into models/<preset>.ts.

    python build.py tune --preset live|studio [--clips N]

then chooses the mask sharpness (softmax(s * logits), a Wiener-like exponent on
the trained masks) that gives the best mean SDR on N training clips, never on
the held-out split, and records it with its table in models/weights/<preset>.json.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import json
import math
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from models.corpus import CORPUS, RATE, STEMS, load_clip
from models.masknet import Cascade, MaskNet
from models.presets import PRESETS, shipped_network
from models.real import REAL, load_real
from models.sources import KNOWN_STEMS

WEIGHTS = Path(__file__).resolve().parent / "weights"
SEGMENT_SECONDS = 4.0


class RealPool:
    """The real recordings of one split (models/real.py) as memory-mapped int16 arrays:
    several hours of audio, shared through the page cache by every training process
    (loaded into each, two runs took 17 of the machine's 24 GB)."""

    def __init__(self, split: str):
        self.items = []
        for path in sorted((REAL / split).glob("*.npz")):
            with np.load(path) as z:
                info = json.loads(str(z["info"]))
                keys = [k for k in KNOWN_STEMS if k in z.files]
                stems = {}
                for k in keys:
                    mapped = path.with_name(f"{path.stem}.{k}.npy")
                    if not mapped.exists():  # unpacked once; npz members cannot be mapped
                        # (a partial name per process: two runs may start at once)
                        tmp = mapped.with_name(f"{mapped.name}.{os.getpid()}.partial")
                        with open(tmp, "wb") as f:
                            np.save(f, z[k])
                        tmp.replace(mapped)
                    stems[k] = np.load(mapped, mmap_mode="r")
                self.items.append((info, float(z["scale"]) / 32767, stems))
        self.vocals = self._by_source(lambda st: "vocals" in st)
        self.accompaniment = self._by_source(lambda st: any(k in st for k in INSTRUMENTAL))
        # Items that hold a stem on its own (a multitrack's drums, a Frets on Fire guitar):
        # the cross-song remix draws from these.
        self.solo_stems = {
            k: [i for i, (_, _, st) in enumerate(self.items) if k in st] for k in ("drums", "bass", "other")
        }

    def _by_source(self, has) -> dict:
        out: dict = {}
        for i, (info, _, stems) in enumerate(self.items):
            if has(stems):
                out.setdefault(info["source"], []).append(i)
        return out

    def pick(self, rng: random.Random, by_source: dict, weights: dict) -> int:
        """An item: first a source (by `weights`, else evenly), then an item of it."""
        names = sorted(by_source)
        source = rng.choices(names, [weights.get(n, 0.1) for n in names])[0]
        return rng.choice(by_source[source])


INSTRUMENTAL = ("drums", "bass", "other", "accompaniment")
# Sources are drawn by these weights, not by their number of items: MIR-1K's 860 short
# clips would otherwise crowd out the long recordings of the other sources.
VOCAL_WEIGHTS = {"mir1k": 0.4, "eif": 0.2, "pjs": 0.15, "utau": 0.25}
# Bands: Frets on Fire's rock band and EIF's multitracks sound most like a record; game music
# (orchestral, electronic) least. Runs 1-8 drew mir1k 0.3, gamemusic 0.35, eif 0.2, fof 0.15;
# run 9 (models/README.md) these, and the real band went up where runs 6-8 took it down.
BAND_WEIGHTS = {"mir1k": 0.2, "gamemusic": 0.1, "eif": 0.3, "fof": 0.4}

# How the remixer draws an example; recorded in weights/<preset>.json with every run.
# Runs 1-3 (issue 9) used record_mix 0, cross_song 0 and levels "uniform"; the issue-19
# ablation (models/README.md, "Training material that sounds like a record") chose the record
# mix, and run 9 more real bands that sound like one.
DEFAULT_MIX = {
    "real_as_is": 0.2,  # a real recording with its own voice over its own band
    "real_voice": 0.6,  # else: a real voice (the rest rendered) ...
    "real_band": 0.6,  # ... over a real band (the rest rendered or cross-song; runs 4-8: 0.4)
    "cross_song": 0.6,  # of the rendered bands: this share built from real stems of different songs (runs 4-8: 0.3)
    "record_mix": 0.7,  # share of examples mixed like a record (RecordMix)
    "levels": "record",  # stem levels: "uniform" (runs 1-3) or "record" (a record's balance)
    "instrumental": 0.08,
    "solo_voice": 0.05,
    "silent_stem": 0.1,
    "vocal_weights": VOCAL_WEIGHTS,
    "band_weights": BAND_WEIGHTS,
}

# A record's balance, dB re a reference level, per stem (drums, bass, other, vocals):
# centred on the median level of each stem in the Everything-is-Free training songs re
# their mix (drums -1.3, other -3.9, vocals -2.8 dB; their bass is mostly missing, so
# bass sits with the other instruments), spread as a mix engineer's choices do.
RECORD_LEVELS = ((-1.5, 4.0), (-3.0, 4.0), (-3.5, 4.0), (-2.5, 5.0))


class RecordMix:
    """Effects that make a training mixture sound like a record, drawn per example.

    Per stem: EQ (high-pass, shelves, a peak), compression at a threshold relative to the
    stem's own level, saturation (mostly on `other`, where the guitars are), room or plate
    reverb and stereo width. On the bus: one EQ applied to every stem and one compressor or
    limiter whose gain, computed from the mix, multiplies every stem. Each stem is processed
    on its own and the bus acts on each stem identically and linearly, so the mixture is
    still exactly the sum of the stems.
    """

    DISTORTION = (0.1, 0.2, 0.35, 0.05)  # chance of saturation per stem
    REVERB = (0.5, 0.1, 0.5, 0.6)  # chance of reverb per stem
    WIDTH = ((0.0, 1.4), (0.0, 0.5), (0.2, 1.6), (0.0, 1.2))

    def __init__(self, rng: random.Random):
        self.rng = rng

    def _u(self, a: float, b: float) -> float:
        return self.rng.uniform(a, b)

    def stem(self, i: int, x: np.ndarray) -> np.ndarray:
        import pedalboard as pb

        peak = float(np.abs(x).max())
        if peak < 1e-5:
            return x
        r, u = self.rng, self._u
        fx = []
        if i != 1 and r.random() < 0.5:
            fx.append(pb.HighpassFilter(u(20, 150)))
        if r.random() < 0.7:
            fx.append(pb.LowShelfFilter(u(60, 250), u(-5, 5)))
        if r.random() < 0.7:
            fx.append(pb.PeakFilter(u(200, 5000), u(-6, 6), u(0.5, 2.5)))
        if r.random() < 0.7:
            fx.append(pb.HighShelfFilter(u(2500, 10000), u(-6, 5)))
        level_db = 20 * math.log10(float(np.sqrt(np.mean(x**2))) / peak + 1e-9)
        if r.random() < 0.6:  # thresholds relative to the stem, which arrives normalised to its peak
            fx.append(
                pb.Compressor(
                    threshold_db=level_db + u(-10, 3), ratio=u(1.5, 8), attack_ms=u(1, 30), release_ms=u(40, 300)
                )
            )
        if r.random() < self.DISTORTION[i]:
            fx.append(pb.Distortion(drive_db=u(3, 24)))
        if r.random() < self.REVERB[i]:
            fx.append(
                pb.Reverb(
                    room_size=u(0.1, 0.85),
                    damping=u(0.2, 0.8),
                    wet_level=u(0.04, 0.3),
                    dry_level=1.0,
                    width=u(0.3, 1.0),
                )
            )
        y = pb.Pedalboard(fx)(np.ascontiguousarray(x / peak, dtype=np.float32), RATE) if fx else x / peak
        width = u(*self.WIDTH[i])
        mid, side = 0.5 * (y[0] + y[1]), 0.5 * (y[0] - y[1]) * width
        y = np.stack([mid + side, mid - side])
        out_peak = float(np.abs(y).max())
        return (y * (peak / out_peak) if out_peak > 0 else y).astype(np.float32)

    def bus(self, stems: np.ndarray) -> np.ndarray:
        import pedalboard as pb

        r, u = self.rng, self._u
        if r.random() < 0.5:
            board = pb.Pedalboard(
                [pb.LowShelfFilter(u(60, 200), u(-3, 3)), pb.HighShelfFilter(u(3000, 9000), u(-3, 3))]
            )
            stems = np.stack([board(np.ascontiguousarray(s), RATE) for s in stems])  # linear: the sum holds
        if r.random() < 0.6:
            mix = stems.sum(0)
            env = np.abs(mix).max(0).astype(np.float64)
            limiter = r.random() < 0.5
            attack, release = (u(0.0005, 0.002), u(0.02, 0.15)) if limiter else (u(0.003, 0.03), u(0.05, 0.4))
            env = _envelope(env, math.exp(-1 / (attack * RATE)), math.exp(-1 / (release * RATE)))
            peak = float(env.max())
            if peak > 1e-6:
                threshold = peak * 10 ** (-u(1, 8) / 20)
                slope = 1.0 if limiter else 1 - 1 / u(2, 6)
                gain = np.minimum(1.0, (threshold / np.maximum(env, 1e-12)) ** slope).astype(np.float32)
                stems = stems * gain  # the same gain on every stem: the sum holds
        return stems

    def __call__(self, stems: np.ndarray, split_known: bool) -> np.ndarray:
        out = stems.copy()
        for i in range(4) if split_known else (2, 3):  # an unsplit accompaniment is a whole mix already
            out[i] = self.stem(i, stems[i]) if split_known or i == 3 else stems[i]
        return self.bus(out)


def _envelope(x: np.ndarray, attack: float, release: float) -> np.ndarray:
    """A peak follower with separate attack and release (one-pole smoothing), decimated by
    32 and interpolated back: the gain of a bus compressor moves far slower than that."""
    step = 32
    coarse = x[: len(x) // step * step].reshape(-1, step).max(1) if len(x) >= step else x
    a, r = attack**step, release**step
    out = np.empty_like(coarse)
    level = 0.0
    for k, v in enumerate(coarse):
        level = a * level + (1 - a) * v if v > level else r * level + (1 - r) * v
        out[k] = level
    return np.interp(np.arange(len(x)), np.arange(len(out)) * step + step // 2, out)


def as_band(part: dict, length: int):
    """(drums, bass, other) when the split is known, else (None, accompaniment as a whole)."""
    z = np.zeros((2, length), np.float32)
    if "accompaniment" in part:
        return None, part["accompaniment"] + sum((part[k] for k in ("drums", "bass", "other") if k in part), z)
    if any(k in part for k in ("drums", "bass", "other")):
        return np.stack([part.get(k, z) for k in ("drums", "bass", "other")]), None
    return None, z


class Remixer:
    """Random training mixtures from rendered clips and real recordings.

    Each example is the exact sum of its stems; which stems are known depends on
    the material: rendered clips and real multitracks know all four, karaoke pairs
    and instrumentals know only the accompaniment as a whole (its drums/bass/other
    split is unknown), which the loss supervises as the sum of those three stems.
    Vocals come from real singing most of the time. A low-pass chosen from the
    narrowest source used (MIR-1K is 16 kHz), and sometimes a random one, goes on
    the whole mixture and every stem, so that bandwidth never tells a stem apart.
    """

    def __init__(self, split: str = "train", seed: int = 0, real: "RealPool | None" = None, mix: "dict | None" = None):
        self.split, self.rng = split, random.Random(seed)
        self.real = real if real is not None else RealPool(split)
        self.mix = dict(DEFAULT_MIX, **(mix or {}))
        self.record = RecordMix(self.rng)
        self.refresh()

    def refresh(self) -> None:
        """The corpus may still be rendering: pick up new clips."""
        self.files = sorted((CORPUS / self.split).glob("clip-*.npz"))
        if not self.files:
            raise SystemExit(f"no clips in {CORPUS / self.split}: run python build.py data first")

    def _cut(self, x: np.ndarray, length: int, start: int) -> np.ndarray:
        seg = x[:, start : start + length]
        return np.pad(seg, ((0, 0), (0, length - seg.shape[1]))) if seg.shape[1] < length else seg

    def _start(self, n: int, length: int) -> int:
        return self.rng.randrange(0, max(1, n - length))

    def _real_part(self, index: int, keys, length: int, audible: bool = True):
        """(stems dict, rate) of a segment of real item `index`, trying for an audible one."""
        info, scale, stems = self.real.items[index]
        n = next(iter(stems.values())).shape[1]
        for _ in range(6):
            start = self._start(n, length)
            out = {k: self._cut(stems[k], length, start).astype(np.float32) * scale for k in keys if k in stems}
            if not audible or sum(float(np.abs(v).max()) for v in out.values()) > 1e-3:
                break
        return out, info["rate"]

    def _voice(self, length: int):
        """Vocals (2, length) and its bandwidth: real singing (share `real_voice`) or rendered.
        (Run 1 used 75 % real and lost ground on the rendered split; run 2 65 % gained on both
        splits but not enough on the rendered one: run 3 gave it another share, 60 %.)"""
        if self.real.vocals and self.rng.random() < self.mix["real_voice"]:
            part, rate = self._real_part(
                self.real.pick(self.rng, self.real.vocals, self.mix["vocal_weights"]), ("vocals",), length
            )
            return part.get("vocals", np.zeros((2, length), np.float32)), rate
        clip = load_clip(self.rng.choice(self.files))
        return self._cut(clip[3], length, self._start(clip.shape[2], length)), RATE

    def _band(self, length: int):
        """(drums, bass, other) or None with the accompaniment, split known or not."""
        r = self.rng.random()
        if self.real.accompaniment and r < self.mix["real_band"]:  # run 1: 0.55, run 2: 0.45, runs 3-8: 0.4, run 9: 0.6
            part, rate = self._real_part(
                self.real.pick(self.rng, self.real.accompaniment, self.mix["band_weights"]), INSTRUMENTAL, length
            )
            return (*as_band(part, length), rate)
        clip = load_clip(self.rng.choice(self.files))
        band = self._cut(clip[:3].reshape(6, -1), length, self._start(clip.shape[2], length)).reshape(3, 2, length)
        if self.rng.random() < self.mix["cross_song"]:
            return self._cross_song(band, length)
        return band, None, RATE

    def _cross_song(self, band: np.ndarray, length: int):
        """Drums, bass and other each from a different real recording that has that stem on its
        own (multitracks, Frets on Fire's guitars), each at its own offset; a stem no real
        recording has keeps the rendered one in `band`."""
        band, rates = band.copy(), [RATE]
        for i, stem in enumerate(("drums", "bass", "other")):
            have = self.real.solo_stems.get(stem)
            if have:
                part, rate = self._real_part(self.rng.choice(have), (stem,), length)
                if stem in part:
                    band[i] = part[stem]
                    rates.append(rate)
        return band, None, min(rates)

    def segment(self, length: int):
        """(stems (4, 2, length), split_known, cutoff_hz): a training example."""
        rates = []
        r = self.rng.random()
        if r < self.mix["real_as_is"] and self.real.items:
            # A real recording as it is: its own voice over its own band.
            part, rate = self._real_part(
                self.rng.randrange(len(self.real.items)), ("drums", "bass", "other", "vocals", "accompaniment"), length
            )
            voice = part.get("vocals", np.zeros((2, length), np.float32))
            band, accompaniment = as_band(part, length)
            rates.append(rate)
        else:
            voice, vrate = self._voice(length)
            band, accompaniment, brate = self._band(length)
            rates += [vrate, brate]
        if self.rng.random() < self.mix["instrumental"]:
            voice = voice * 0
        if self.rng.random() < self.mix["solo_voice"]:
            band, accompaniment = None, np.zeros((2, length), np.float32)
        out = np.zeros((4, 2, length), np.float32)
        if band is not None:
            for i in range(3):
                if self.rng.random() < self.mix["silent_stem"]:
                    continue
                out[i] = band[i] * self._gain(i, band[i])
            split_known = True
        else:
            out[2] = accompaniment * self._gain(2, accompaniment)
            split_known = False
        out[3] = voice * self._gain(3, voice)
        if self.rng.random() < self.mix["record_mix"]:
            out = self.record(out, split_known)
        if self.rng.random() < 0.5:
            out = out[:, ::-1]  # swap channels
        cutoff = min(rates) / 2
        if self.rng.random() < 0.25:
            cutoff = min(cutoff, self.rng.uniform(4000, 16000))
        return np.ascontiguousarray(out), split_known, cutoff

    def _gain(self, i: int, x: np.ndarray) -> float:
        """Stem i's gain: uniform (-9..+3 dB, vocals -12..+6, on the level the stem came with;
        runs 1-3) or a record's balance (RECORD_LEVELS re an RMS of 0.1; the model is level
        invariant, so only the balance matters)."""
        if self.mix["levels"] == "uniform":
            return 10 ** (self.rng.uniform(*((-12, 6) if i == 3 else (-9, 3))) / 20)
        mean, spread = RECORD_LEVELS[i]
        rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
        return 0.1 / rms * 10 ** (self.rng.gauss(mean, spread) / 20) if rms > 1e-5 else 1.0

    def batch(self, size: int, length: int):
        """(stems (B, 4, 2, n), split_known (B,), cutoff_hz (B,)): the low-pass at cutoff_hz
        goes on the mixture and every stem alike, in the loss's STFT frames."""
        examples = [self.segment(length) for _ in range(size)]
        return (
            torch.from_numpy(np.stack([e[0] for e in examples])),
            torch.tensor([e[1] for e in examples]),
            torch.tensor([e[2] for e in examples]),
        )


def lowpass_gains(cutoff_hz: torch.Tensor, bins: int) -> torch.Tensor:
    """(B, bins) gains of a low-pass with a 500 Hz raised-cosine edge at each cutoff. Applied
    to STFT frames it equals filtering the waveform up to the window's leakage, which the
    edge's width keeps small; it is shared by the mixture and all its stems, so a band
    limit says nothing about which stem a sound belongs to."""
    f = torch.linspace(0, RATE / 2, bins)
    edge = torch.clamp((cutoff_hz[:, None] - f[None]) / 500 + 0.5, 0, 1)
    return 0.5 - 0.5 * torch.cos(math.pi * edge)


def loss_fn(
    net: MaskNet,
    stems: torch.Tensor,
    split_known: torch.Tensor,
    cutoff_hz: torch.Tensor,
    vocals_weight: float = 1.0,
    other_weight: float = 1.0,
) -> torch.Tensor:
    """L1 distance between the masked mixture spectra and the true stems' spectra, in
    the network's own STFT frames: the same objective as comparing waveforms (the
    synthesis is a fixed linear map), without paying an inverse STFT and another STFT.
    Where only the accompaniment is known (karaoke pairs, instrumentals, held in the
    `other` slot), drums + bass + other are compared with it as a whole. Each example
    counts relative to its mixture's level, as the model's output scales with it.
    `vocals_weight` counts the vocals stem that many times the others (run 3: the
    acapella is the product's first job and studio's vocals the target it missed). It
    matters only where all four stems are known: with masks summing to one and stems
    to the mix, the accompaniment's error is minus the vocals' error. `other_weight` does
    the same for `other` where all four are known (run 16: more real multitracks among the
    bands moved drums and bass and cost `other`); where only the accompaniment is known it is
    the whole accompaniment, and weighs 1."""
    mix = stems.sum(1)
    k = net.lookahead_frames
    gains = lowpass_gains(cutoff_hz, net.n_bins)  # (B, bins)
    spec_mix = net.spectra(mix) * gains[:, None, None]  # (B, C, frames, bins)
    with torch.no_grad():
        spec_ref = net.spectra(stems) * gains[:, None, None, None]  # (B, S, C, frames, bins)
    masks = net.masks(spec_mix)[:, :, :, k:]
    frames = masks.shape[3]
    est = masks * spec_mix[:, None, :, :frames]
    ref = spec_ref[:, :, :, :frames]
    level = spec_mix.abs().mean(dim=(1, 2, 3)) + 1e-6  # (B,)
    per_stem = (est - ref).abs().mean(dim=(2, 3, 4))  # (B, S)
    whole = (est[:, :3].sum(1) - ref[:, :3].sum(1)).abs().mean(dim=(1, 2, 3))  # (B,)
    w, wo = vocals_weight, other_weight
    known = (per_stem[:, :2].sum(1) + wo * per_stem[:, 2] + w * per_stem[:, 3]) / (2 + wo + w)
    partial = (w * per_stem[:, 3] + whole) / (1 + w)
    return (torch.where(split_known, known, partial) / level).mean()


def sdr(est: np.ndarray, ref: np.ndarray) -> float:
    """Global SDR in dB (the MDX convention)."""
    return float(10 * np.log10((np.sum(ref**2) + 1e-8) / (np.sum((ref - est) ** 2) + 1e-8)))


def validation_set(rendered: int = 12, real: int = 12, split: str = "test", band: bool = True) -> list:
    """(name, stems (4, 2, n), split_known) examples: the first rendered clips of `split`
    and fixed 8-second excerpts of its real recordings (models/real.py)."""
    examples = [(p.stem, load_clip(p), True) for p in sorted((CORPUS / split).glob("clip-*.npz"))[:rendered]]
    paths = sorted((REAL / split).glob("*.npz"))
    # Spread over the held-out sources and singers: every k-th recording.
    for path in paths[:: max(1, len(paths) // real)][:real]:
        stems, info = load_real(path)
        n = next(iter(stems.values())).shape[1]
        start = max(0, n // 2 - 4 * RATE)
        cut = {k: v[:, start : start + 8 * RATE] for k, v in stems.items()}
        z = np.zeros_like(next(iter(cut.values())))
        if "accompaniment" in cut:
            out = np.stack([z, z, cut["accompaniment"], cut.get("vocals", z)])
        else:
            out = np.stack([cut.get(k, z) for k in STEMS])
        examples.append((f"real:{path.stem}", out, "accompaniment" not in cut))
    if band and split == "test":
        examples += band_examples()
    return examples


def band_examples() -> list:
    """The real-band validation songs (models/band_validation.py: validation only, never
    trained on), whole, as ("band:<song>", stems, True); none when the set is not fetched."""
    from models import band_validation

    try:
        return [(f"band:{name}", stems, True) for name, stems in band_validation.songs()]
    except band_validation.MissingValidationSet as e:
        print(f"note: validating without the real-band set: {e}")
        return []


def separate_whole(net: "MaskNet | Cascade", mix: torch.Tensor) -> np.ndarray:
    """(S, C, n) stems of a (C, n) mixture, aligned, from a zero state."""
    pad = net.lookahead_samples + net.hop
    padded = torch.nn.functional.pad(mix[None], (0, pad - mix.shape[-1] % net.hop + net.hop))
    y, _ = net(padded, net.initial_state(1))
    return y[0, ..., net.lookahead_samples : net.lookahead_samples + mix.shape[-1]].numpy()


@torch.no_grad()
def validate(net: "MaskNet | Cascade", examples: list) -> dict:
    """Mean global SDR per stem on the rendered and on the real examples; where only
    the accompaniment is known it is scored as the sum of drums, bass and other."""
    net.eval()
    scores: dict = {}
    for name, stems, split_known in examples:
        group = name.split(":", 1)[0] if ":" in name else "rendered"
        y = separate_whole(net, torch.from_numpy(stems.sum(0)))
        pairs = (
            [(s, y[i], stems[i]) for i, s in enumerate(STEMS)]
            if split_known
            else [("vocals", y[3], stems[3]), ("accompaniment", y[:3].sum(0), stems[2])]
        )
        for s, est, ref in pairs:
            if np.abs(ref).max() > 1e-4:
                scores.setdefault(group, {}).setdefault(s, []).append(sdr(est, ref))
    net.train()
    return {g: {s: round(float(np.mean(v)), 2) for s, v in d.items()} for g, d in scores.items()}


def load_matching(net: MaskNet, path: Path) -> list:
    """Load the tensors of a state_dict whose shapes match; return the names left as built.
    A weight that only has more inputs now (dimension 1: the HPSS channels added to the front
    end) keeps its saved part and starts at zero for the new inputs, so the widened network
    computes exactly what the saved one did and learns from there. The STFT windows are not
    weights: they follow the new network's configuration (its synthesis length), never the file."""
    saved = torch.load(path, weights_only=True)
    saved = {k: v for k, v in saved.items() if k not in ("window", "synthesis_window")}
    own = net.state_dict()
    usable = {k: v for k, v in saved.items() if k in own and own[k].shape == v.shape}
    for k, v in saved.items():
        mine = own.get(k)
        if k in usable or mine is None or mine.dim() != v.dim() or v.dim() < 2:
            continue
        if mine.shape[0] == v.shape[0] and mine.shape[2:] == v.shape[2:] and mine.shape[1] > v.shape[1]:
            widened = torch.zeros_like(mine)
            widened[:, : v.shape[1]] = v
            usable[k] = widened
    net.load_state_dict(usable, strict=False)
    # A skip that starts at zero adds nothing yet: it is not counted as fresh.
    return sorted(set(own) - set(usable) - {"hpss_skip", "window", "synthesis_window"})


WARMUP_STEPS = 40
SKIP_LR_SCALE = 20.0
VALIDATE_EVERY = 100


def keep_freed_memory() -> None:
    """Let glibc's malloc keep freed blocks for reuse instead of handing them back to the
    kernel. Measured in run 2 (strace, /proc/PID/stat): glibc served every tensor over 32 MB
    with mmap and freed it with munmap, so each step faulted its activations in afresh,
    about 350 000 page faults a second, and the kernel's share of the CPU time was over
    half; with mmap off and no trimming, studio took 2.1 s a step instead of 3.2 and live
    1.2 instead of 2.7 (both at once, one thread each). Same arithmetic, same results."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to do
        return
    m_trim_threshold, m_mmap_max = -1, -4  # malloc.h
    libc.mallopt(m_mmap_max, 0)
    libc.mallopt(m_trim_threshold, 2**31 - 1)


# Weight averaging (campaign run 2): validation between neighbouring steps swung by up to
# 1.6 dB on the real vocals (run 2, studio steps 800 and 819), so the weights shipped and
# validated are an exponential moving average over about the last 1 / (1 - EMA_DECAY) steps.
EMA_DECAY = 0.995


def git_commit(path: Path) -> str:
    """The commit of the repository holding `path`, with "+changes" if its tree differs."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "HEAD")
    return head + ("+changes" if head and git("status", "--porcelain", "--untracked-files=no") else "")


def data_manifest(pool: RealPool, corpus_files: list) -> dict:
    """What the run trained on: each real source with its item count and minutes, the
    commits of the GitHub repositories and the versions of the Debian packages they came
    from, and the rendered corpus's clip count."""
    from models.sources import SOURCES_DIR

    sources: dict = {}
    for info, _, stems in pool.items:
        entry = sources.setdefault(info["source"], {"items": 0, "minutes": 0.0})
        entry["items"] += 1
        entry["minutes"] = round(entry["minutes"] + next(iter(stems.values())).shape[1] / RATE / 60, 1)
    repos = {}
    for path in sorted(SOURCES_DIR.glob("*+*")):
        git_dir = path / ".git" if (path / ".git").exists() else path
        commit = subprocess.run(
            ["git", "--git-dir", str(git_dir), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        repos[path.name.replace("+", "/", 1)] = commit
    packages = subprocess.run(
        [
            "dpkg-query",
            "-W",
            "-f",
            "${Package}=${Version}\\n",
            "musescore-general-soundfont",
            "fluid-soundfont-gm",
            "avldrums.lv2-soundfont",
            "hydrogen-drumkits",
            "mma",
            "fillets-ng-data",
            "wesnoth-1.16-music",
            "warzone2100-music",
            "ufoai-music",
            "fretsonfire-songs-sectoid",
            "fretsonfire-songs-muldjord",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    return {
        "real": sources,
        "github": repos,
        "debian": packages,
        "rendered": {"clips": len(corpus_files), "folder": str(CORPUS / "train")},
    }


def lr_at(step: int, steps: int, lr: float) -> float:
    """Warm-up over WARMUP_STEPS, then a cosine from lr to lr / 10 over `steps`: a function of
    the step alone, so a resumed or repeated run follows the same schedule."""
    progress = min(1.0, step / steps)
    return lr * min(1.0, (step + 1) / WARMUP_STEPS) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    preset: str,
    minutes: float,
    threads: int,
    batch: int,
    lr: float,
    run: str = "",
    front: str = "",
    init: str = "",
    steps: int = 3000,
    vocals_weight: float = 0.0,
    mix: "dict | None" = None,
    seed: int = 0,
    hpss: "tuple | None" = None,
    loss_sharpness: "list | None" = None,
    other_weight: float = 0.0,
    synthesis_length: int = 0,
) -> None:
    """Train `preset` for `steps` steps (the learning-rate schedule's length), stopping
    after `minutes` of wall clock in this invocation (0: no limit) with a checkpoint that a
    later invocation resumes from, schedule, random state and all. `run` names an experiment
    (its own checkpoint folder; its weights stay there), `front` overrides the preset's
    front end, `vocals_weight` weighs the vocals stem in the loss (0 keeps a resumed run's,
    1 for a new one), `mix` overrides the remixer's DEFAULT_MIX for a new run, `seed` seeds
    a new run's random state, `hpss` (time frames, frequency bins) adds the HPSS inputs and
    skip to a new run's network (models/masknet.py), `loss_sharpness` (one exponent or one per
    stem) trains and validates a new run through those mask exponents, as `calibrate` ships them;
    `other_weight` weighs `other` as `vocals_weight` weighs the vocals; `synthesis_length`
    shortens a new run's synthesis window (models/masknet.py: the model's own latency is that
    minus the hop)."""
    keep_freed_memory()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    run = run or preset
    folder = CORPUS.parent / "train" / run
    folder.mkdir(parents=True, exist_ok=True)
    ckpt_path = folder / "checkpoint.pt"
    config = dict(
        PRESETS[preset],
        **({"front": front} if front else {}),
        **({"hpss": list(hpss)} if hpss else {}),
        **({"synthesis_length": synthesis_length} if synthesis_length else {}),
    )
    ckpt = torch.load(ckpt_path, weights_only=False) if ckpt_path.exists() else None
    if ckpt is not None:  # a resumed run keeps the network it was started with
        config = ckpt["state"]["config"]
    net = MaskNet(**config)
    # The HPSS skip starts at zero in a network that is already trained: at the base rate it
    # would take thousands of steps to reach the size of the logits, so it learns faster.
    skip = [p for n, p in net.named_parameters() if n == "hpss_skip"]
    rest = [p for n, p in net.named_parameters() if n != "hpss_skip"]
    groups = [{"params": rest}] + ([{"params": skip, "lr_scale": SKIP_LR_SCALE}] if skip else [])
    opt = torch.optim.Adam(groups, lr=lr)
    state = {
        "step": 0,
        "seconds": 0.0,
        "log": [],
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()},
        "run_config": {
            "steps": steps,
            "lr": lr,
            "warmup_steps": WARMUP_STEPS,
            "schedule": "cosine to lr/10",
            "batch": batch,
            "segment_seconds": SEGMENT_SECONDS,
            "seed": seed,
            "ema_decay": EMA_DECAY,
            "hpss_skip_lr_scale": SKIP_LR_SCALE,
            "loss_sharpness": loss_sharpness or 1.0,
            "mix": dict(DEFAULT_MIX, **(mix or {})),
            "commit": git_commit(Path(__file__).parent),
        },
    }
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        state = ckpt["state"]
        state.setdefault("run_config", {"steps": steps, "lr": lr, "batch": batch, "mix": dict(DEFAULT_MIX)})
        print(
            f"resumed {run} at step {state['step']} of {state['run_config']['steps']} "
            f"({state['seconds'] / 60:.1f} min trained)"
        )
    else:
        # A new run starts from the given weights (default: the shipped preset's), taking
        # every tensor whose shape still fits; a changed front end starts fresh.
        source = Path(init) if init else WEIGHTS / f"{preset}.pt"
        if source.exists():
            fresh = load_matching(net, source)
            state["init"] = {"from": str(source.name), "fresh": fresh}
            print(f"{run}: initialised from {source} (fresh: {', '.join(fresh) or 'nothing'})")
    run_config = state["run_config"]
    steps, lr, batch = run_config["steps"], run_config["lr"], run_config["batch"]
    # The masks' exponents are not weights (not in the state dict): a resumed run takes its own.
    net.set_sharpness(run_config.get("loss_sharpness", 1.0))
    # The average starts from the weights the run starts or resumes with.
    averaged = copy.deepcopy(net)
    if ckpt is not None and "averaged" in ckpt:
        averaged.load_state_dict(ckpt["averaged"])
    state.setdefault("averaged_since", state["step"])
    # A resumed run keeps its loss unless told otherwise; the change is logged with its step.
    for name, weight in (("vocals_weight", vocals_weight), ("other_weight", other_weight)):
        if weight and weight != state.get(name, 1.0):
            state.setdefault("changes", []).append({"step": state["step"], name: weight})
            state[name] = weight
        state.setdefault(name, 1.0)
    print(
        f"{run}: vocals weigh {state['vocals_weight']}, other {state['other_weight']} in the loss; "
        f"mix {json.dumps(run_config['mix'])}",
        flush=True,
    )
    data = Remixer(seed=run_config.get("seed", 0), mix=run_config["mix"])
    if ckpt is not None and "random" in ckpt:  # the remixer and torch carry on where they stopped
        data.rng.setstate(ckpt["random"]["remixer"])
        torch.set_rng_state(ckpt["random"]["torch"])
    state["data"] = data_manifest(data.real, data.files)
    examples = validation_set()
    length = int(SEGMENT_SECONDS * RATE) // net.hop * net.hop

    def save() -> None:
        tmp = ckpt_path.with_suffix(".partial")
        torch.save(
            {
                "model": net.state_dict(),
                "averaged": averaged.state_dict(),
                "opt": opt.state_dict(),
                "state": state,
                "random": {"remixer": data.rng.getstate(), "torch": torch.get_rng_state()},
            },
            tmp,
        )
        tmp.replace(ckpt_path)

    def log_validation() -> None:
        scores = validate(averaged if state["step"] else net, examples)
        state["log"].append({"step": state["step"], "minutes": round(state["seconds"] / 60, 2), "sdr": scores})
        print(f"{run} step {state['step']} held-out SDR {json.dumps(scores)}", flush=True)

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    started = last_save = time.time()
    if not state["log"]:
        log_validation()
    net.train()
    while state["step"] < steps and not stop["now"] and not (minutes and time.time() - started > minutes * 60):
        t0 = time.time()
        rate = lr_at(state["step"], steps, lr)
        for group in opt.param_groups:
            group["lr"] = rate * group.get("lr_scale", 1.0)
        loss = loss_fn(
            net, *data.batch(batch, length), vocals_weight=state["vocals_weight"], other_weight=state["other_weight"]
        )
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        with torch.no_grad():
            for a, w in zip(averaged.state_dict().values(), net.state_dict().values()):
                if a.is_floating_point():
                    a.lerp_(w, 1 - EMA_DECAY)
                else:
                    a.copy_(w)
        state["step"] += 1
        state["seconds"] += time.time() - t0
        if state["step"] % 20 == 0:
            print(
                f"{run} step {state['step']} loss {loss.item():.4f} lr {rate:.2e} "
                f"{state['seconds'] / 60:.1f} min, {100 * state['step'] / steps:.0f} %",
                flush=True,
            )
        if state["step"] % VALIDATE_EVERY == 0:
            data.refresh()
            log_validation()
        if time.time() - last_save > 180:
            save()
            last_save = time.time()
    if state["log"][-1]["step"] != state["step"]:
        log_validation()
    save()
    out = WEIGHTS if run == preset else folder
    out.mkdir(exist_ok=True)
    torch.save(averaged.state_dict(), out / f"{preset}.pt")  # the averaged weights
    (out / f"{preset}.json").write_text(
        json.dumps(
            {
                "preset": preset,
                "run": run,
                "steps": state["step"],
                "train_minutes": round(state["seconds"] / 60, 1),
                "threads": threads,
                "batch": batch,
                "segment_seconds": SEGMENT_SECONDS,
                "config": state["config"],
                "run_config": run_config,
                "data": state["data"],
                "averaged": {"decay": EMA_DECAY, "since_step": state["averaged_since"]},
                "vocals_weight": state["vocals_weight"],
                "other_weight": state["other_weight"],
                "changes": state.get("changes", []),
                "init": state.get("init"),
                "log": state["log"],
            },
            indent=1,
        )
    )
    done = "done" if state["step"] >= steps else f"stopped at step {state['step']} of {steps}: rerun to resume"
    print(f"wrote {out / f'{preset}.pt'} ({done}); next: python build.py tune --preset {preset}")


SHARPNESS_GRID = (0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


def tune(preset: str, clips: int, threads: int) -> None:
    """Choose the mask sharpness of the trained `preset` on training clips."""
    torch.set_num_threads(threads)
    meta_path = WEIGHTS / f"{preset}.json"
    meta = json.loads(meta_path.read_text())
    examples = validation_set(clips // 2, clips // 2, split="train")
    net = shipped_network(preset, meta, WEIGHTS / f"{preset}.pt")
    table = {}
    for sharpness in SHARPNESS_GRID:
        net.set_sharpness(sharpness)
        scores = validate(net, examples)
        values = [v for group in scores.values() for v in group.values()]
        table[str(sharpness)] = dict(scores, mean=round(float(np.mean(values)), 3))
        print(f"{preset} sharpness {sharpness}: {json.dumps(table[str(sharpness)])}", flush=True)
    best = max(SHARPNESS_GRID, key=lambda v: table[str(v)]["mean"])
    meta.update(
        mask_sharpness=best,
        mask_sharpness_tuning={"clips": f"{clips // 2} rendered and {clips // 2} real training excerpts", "sdr": table},
    )
    meta_path.write_text(json.dumps(meta, indent=1))
    print(f"{preset}: mask sharpness {best} written to {meta_path}; run `python build.py {preset}`")


def tune_main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="build.py tune", description=tune.__doc__)
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--clips", type=int, default=40, help="training clips to score on")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    tune(args.preset, args.clips, args.threads)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="build.py train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument(
        "--minutes",
        type=float,
        default=0,
        help="stop this invocation after M minutes with a checkpoint (0: run to the end)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--run", default="", help="experiment name (its own checkpoint; weights stay in it)")
    parser.add_argument("--front", choices=("linear", "conv"), default="", help="override the preset's front end")
    parser.add_argument("--init", default="", help="weights to start a new run from (default: the shipped preset's)")
    parser.add_argument(
        "--steps",
        type=int,
        default=3000,
        help="the run's length in steps; the learning rate's schedule follows it (a resumed run keeps its own)",
    )
    parser.add_argument("--seed", type=int, default=0, help="a new run's random seed")
    parser.add_argument(
        "--loss-sharpness",
        default="",
        metavar="A[,A,A,A]",
        help="train a new run through these mask exponents (one, or drums,bass,other,vocals)",
    )
    parser.add_argument(
        "--hpss",
        default="",
        metavar="FRAMES,BINS",
        help="add HPSS inputs and the per-bin HPSS skip to a new run (odd median lengths in frames and bins)",
    )
    parser.add_argument("--record-mix", type=float, default=None, help="share of examples mixed like a record")
    parser.add_argument(
        "--cross-song",
        type=float,
        default=None,
        help="share of rendered bands rebuilt from real stems of different songs",
    )
    parser.add_argument("--levels", choices=("uniform", "record"), default=None, help="how stem levels are drawn")
    parser.add_argument("--real-band", type=float, default=None, help="share of voices laid over a real band")
    parser.add_argument(
        "--instrumental",
        type=float,
        default=None,
        help="share of examples with the voice removed (teaches an empty vocals stem; default 0.08)",
    )
    parser.add_argument(
        "--band-weights",
        default="",
        metavar="SOURCE=W,...",
        help="how the real bands are drawn by source, a source left out not at all (default: BAND_WEIGHTS), e.g. fof=0.5,eif=0.5",
    )
    parser.add_argument(
        "--vocals-weight",
        type=float,
        default=0.0,
        help="weigh the vocals stem this many times the others in the loss (default: the resumed run's, else 1)",
    )
    parser.add_argument(
        "--other-weight",
        type=float,
        default=0.0,
        help="weigh the `other` stem this many times drums and bass in the loss (default: the resumed run's, else 1)",
    )
    parser.add_argument(
        "--synthesis-length",
        type=int,
        default=0,
        metavar="SAMPLES",
        help="a new run's synthesis window, a multiple of the hop up to n_fft (default n_fft); "
        "the model's own latency is this minus the hop",
    )
    args = parser.parse_args(argv)
    mix = {
        k: v
        for k, v in (
            ("record_mix", args.record_mix),
            ("cross_song", args.cross_song),
            ("levels", args.levels),
            ("real_band", args.real_band),
            ("instrumental", args.instrumental),
        )
        if v is not None
    }
    for name, share in mix.items():
        if name != "levels" and not 0.0 <= share <= 1.0:
            parser.error(f"--{name.replace('_', '-')} is a share of the examples, from 0 to 1 (got {share})")
    if args.band_weights:
        try:
            # A source left out is not drawn (RealPool.pick gives an unlisted source 0.1).
            weights = {k: 0.0 for k in BAND_WEIGHTS}
            weights.update({k: float(v) for k, v in (item.split("=") for item in args.band_weights.split(","))})
        except ValueError:
            parser.error(f"--band-weights: expected SOURCE=WEIGHT,... (got {args.band_weights!r})")
        unknown = set(weights) - set(BAND_WEIGHTS)
        if unknown:
            parser.error(
                f"--band-weights: unknown source(s) {', '.join(sorted(unknown))}; known: {', '.join(BAND_WEIGHTS)}"
            )
        if min(weights.values()) < 0 or sum(weights.values()) <= 0:
            parser.error(f"--band-weights: weights are >= 0 and at least one is above 0 (got {args.band_weights!r})")
        mix["band_weights"] = weights
    train(
        args.preset,
        args.minutes,
        args.threads,
        args.batch,
        args.lr,
        args.run,
        args.front,
        args.init,
        args.steps,
        args.vocals_weight,
        mix,
        args.seed,
        tuple(int(v) for v in args.hpss.split(",")) if args.hpss else None,
        [float(v) for v in args.loss_sharpness.split(",")] if args.loss_sharpness else None,
        args.other_weight,
        args.synthesis_length,
    )


if __name__ == "__main__":
    main()
