"""Train a MaskNet preset on the rendered corpus, on the CPU, resumably.

    python build.py train --preset live|studio [--minutes M] [--threads T]

Every step draws random 4-second segments and remixes them: each stem may
come from a different clip, with its own gain, and may be silent, so the
network sees far more mixtures than the corpus has clips. The mixture is the
exact sum of the stems. The loss compares the separated stems with the true
ones in the waveform and in the STFT magnitude.

Checkpoints go to <cache>/train/<preset>/checkpoint.pt every few minutes and
on exit; a new run resumes from it, or, without one, from the shipped weights in
models/weights/ (pass a larger --minutes to train them further). The learning
rate follows the wall-clock budget (warm-up, then cosine), so a resumed run
continues the schedule.
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
import random
import signal
import time
from pathlib import Path

import numpy as np
import torch

from corpus import CORPUS, RATE, STEMS, load_clip
from masknet import MaskNet
from presets import PRESETS
from real import KNOWN_STEMS, REAL, load_real

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
                        tmp = mapped.with_name(mapped.name + ".partial")
                        with open(tmp, "wb") as f:
                            np.save(f, z[k])
                        tmp.replace(mapped)
                    stems[k] = np.load(mapped, mmap_mode="r")
                self.items.append((info, float(z["scale"]) / 32767, stems))
        self.vocals = self._by_source(lambda st: "vocals" in st)
        self.accompaniment = self._by_source(lambda st: any(k in st for k in INSTRUMENTAL))

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
BAND_WEIGHTS = {"mir1k": 0.3, "gamemusic": 0.35, "eif": 0.2, "fof": 0.15}


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

    def __init__(self, split: str = "train", seed: int = 0, real: "RealPool | None" = None):
        self.split, self.rng = split, random.Random(seed)
        self.real = real if real is not None else RealPool(split)
        self.refresh()

    def refresh(self) -> None:
        """The corpus may still be rendering: pick up new clips."""
        self.files = sorted((CORPUS / self.split).glob("clip-*.npz"))
        if not self.files:
            raise SystemExit(f"no clips in {CORPUS / self.split}: run python build.py data first")

    def _cut(self, x: np.ndarray, length: int, start: int) -> np.ndarray:
        seg = x[:, start:start + length]
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
        """Vocals (2, length) and its bandwidth: real singing 60 %, rendered 40 %.
        (Run 1 used 75/25 and lost ground on the rendered split; run 2 65/35 gained on both
        splits but not enough on the rendered one: run 3 gives it another share.)"""
        if self.real.vocals and self.rng.random() < 0.60:
            part, rate = self._real_part(self.real.pick(self.rng, self.real.vocals, VOCAL_WEIGHTS), ("vocals",), length)
            return part.get("vocals", np.zeros((2, length), np.float32)), rate
        clip = load_clip(self.rng.choice(self.files))
        return self._cut(clip[3], length, self._start(clip.shape[2], length)), RATE

    def _band(self, length: int):
        """(drums, bass, other) or None with the accompaniment, split known or not."""
        r = self.rng.random()
        if self.real.accompaniment and r < 0.40:  # run 1: 0.55, run 2: 0.45
            part, rate = self._real_part(self.real.pick(self.rng, self.real.accompaniment, BAND_WEIGHTS),
                                         INSTRUMENTAL, length)
            return (*as_band(part, length), rate)
        clip = load_clip(self.rng.choice(self.files))
        return self._cut(clip[:3].reshape(6, -1), length, self._start(clip.shape[2], length)).reshape(3, 2, length), None, RATE

    def segment(self, length: int):
        """(stems (4, 2, length), split_known, cutoff_hz): a training example."""
        rates = []
        r = self.rng.random()
        if r < 0.2 and self.real.items:
            # A real recording as it is: its own voice over its own band.
            part, rate = self._real_part(self.rng.randrange(len(self.real.items)),
                                         ("drums", "bass", "other", "vocals", "accompaniment"), length)
            voice = part.get("vocals", np.zeros((2, length), np.float32))
            band, accompaniment = as_band(part, length)
            rates.append(rate)
        else:
            voice, vrate = self._voice(length)
            band, accompaniment, brate = self._band(length)
            rates += [vrate, brate]
        if self.rng.random() < 0.08:
            voice = voice * 0  # instrumental
        if self.rng.random() < 0.05:
            band, accompaniment = None, np.zeros((2, length), np.float32)  # a solo voice
        out = np.zeros((4, 2, length), np.float32)
        if band is not None:
            for i in range(3):
                if self.rng.random() < 0.1:
                    continue  # a silent stem
                out[i] = band[i] * 10 ** (self.rng.uniform(-9, 3) / 20)
            split_known = True
        else:
            out[2] = accompaniment * 10 ** (self.rng.uniform(-9, 3) / 20)
            split_known = False
        out[3] = voice * 10 ** (self.rng.uniform(-12, 6) / 20)
        if self.rng.random() < 0.5:
            out = out[:, ::-1]  # swap channels
        cutoff = min(rates) / 2
        if self.rng.random() < 0.25:
            cutoff = min(cutoff, self.rng.uniform(4000, 16000))
        return np.ascontiguousarray(out), split_known, cutoff

    def batch(self, size: int, length: int):
        """(stems (B, 4, 2, n), split_known (B,), cutoff_hz (B,)): the low-pass at cutoff_hz
        goes on the mixture and every stem alike, in the loss's STFT frames."""
        examples = [self.segment(length) for _ in range(size)]
        return (torch.from_numpy(np.stack([e[0] for e in examples])),
                torch.tensor([e[1] for e in examples]), torch.tensor([e[2] for e in examples]))


def lowpass_gains(cutoff_hz: torch.Tensor, bins: int) -> torch.Tensor:
    """(B, bins) gains of a low-pass with a 500 Hz raised-cosine edge at each cutoff. Applied
    to STFT frames it equals filtering the waveform up to the window's leakage, which the
    edge's width keeps small; it is shared by the mixture and all its stems, so a band
    limit says nothing about which stem a sound belongs to."""
    f = torch.linspace(0, RATE / 2, bins)
    edge = torch.clamp((cutoff_hz[:, None] - f[None]) / 500 + 0.5, 0, 1)
    return 0.5 - 0.5 * torch.cos(math.pi * edge)


def loss_fn(net: MaskNet, stems: torch.Tensor, split_known: torch.Tensor, cutoff_hz: torch.Tensor,
            vocals_weight: float = 1.0) -> torch.Tensor:
    """L1 distance between the masked mixture spectra and the true stems' spectra, in
    the network's own STFT frames: the same objective as comparing waveforms (the
    synthesis is a fixed linear map), without paying an inverse STFT and another STFT.
    Where only the accompaniment is known (karaoke pairs, instrumentals, held in the
    `other` slot), drums + bass + other are compared with it as a whole. Each example
    counts relative to its mixture's level, as the model's output scales with it.
    `vocals_weight` counts the vocals stem that many times the others (run 3: the
    acapella is the product's first job and studio's vocals the target it missed). It
    matters only where all four stems are known: with masks summing to one and stems
    to the mix, the accompaniment's error is minus the vocals' error."""
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
    w = vocals_weight
    known = (per_stem[:, :3].sum(1) + w * per_stem[:, 3]) / (3 + w)
    partial = (w * per_stem[:, 3] + whole) / (1 + w)
    return (torch.where(split_known, known, partial) / level).mean()


def sdr(est: np.ndarray, ref: np.ndarray) -> float:
    """Global SDR in dB (the MDX convention)."""
    return float(10 * np.log10((np.sum(ref ** 2) + 1e-8) / (np.sum((ref - est) ** 2) + 1e-8)))


def validation_set(rendered: int = 12, real: int = 12, split: str = "test") -> list:
    """(name, stems (4, 2, n), split_known) examples: the first rendered clips of `split`
    and fixed 8-second excerpts of its real recordings (models/real.py)."""
    examples = [(p.stem, load_clip(p), True) for p in sorted((CORPUS / split).glob("clip-*.npz"))[:rendered]]
    paths = sorted((REAL / split).glob("*.npz"))
    # Spread over the held-out sources and singers: every k-th recording.
    for path in paths[::max(1, len(paths) // real)][:real]:
        stems, info = load_real(path)
        n = next(iter(stems.values())).shape[1]
        start = max(0, n // 2 - 4 * RATE)
        cut = {k: v[:, start:start + 8 * RATE] for k, v in stems.items()}
        z = np.zeros_like(next(iter(cut.values())))
        if "accompaniment" in cut:
            out = np.stack([z, z, cut["accompaniment"], cut.get("vocals", z)])
        else:
            out = np.stack([cut.get(k, z) for k in STEMS])
        examples.append((f"real:{path.stem}", out, "accompaniment" not in cut))
    return examples


def separate_whole(net: MaskNet, mix: torch.Tensor) -> np.ndarray:
    """(S, C, n) stems of a (C, n) mixture, aligned, from a zero state."""
    pad = net.lookahead_samples + net.hop
    padded = torch.nn.functional.pad(mix[None], (0, pad - mix.shape[-1] % net.hop + net.hop))
    y, _ = net(padded, net.initial_state(1))
    return y[0, ..., net.lookahead_samples:net.lookahead_samples + mix.shape[-1]].numpy()


@torch.no_grad()
def validate(net: MaskNet, examples: list) -> dict:
    """Mean global SDR per stem on the rendered and on the real examples; where only
    the accompaniment is known it is scored as the sum of drums, bass and other."""
    net.eval()
    scores: dict = {}
    for name, stems, split_known in examples:
        group = "real" if name.startswith("real:") else "rendered"
        y = separate_whole(net, torch.from_numpy(stems.sum(0)))
        pairs = [(s, y[i], stems[i]) for i, s in enumerate(STEMS)] if split_known else \
            [("vocals", y[3], stems[3]), ("accompaniment", y[:3].sum(0), stems[2])]
        for s, est, ref in pairs:
            if np.abs(ref).max() > 1e-4:
                scores.setdefault(group, {}).setdefault(s, []).append(sdr(est, ref))
    net.train()
    return {g: {s: round(float(np.mean(v)), 2) for s, v in d.items()} for g, d in scores.items()}


def load_matching(net: MaskNet, path: Path) -> list:
    """Load the tensors of a state_dict whose shapes match; return the names left as built."""
    saved = torch.load(path, weights_only=True)
    own = net.state_dict()
    usable = {k: v for k, v in saved.items() if k in own and own[k].shape == v.shape}
    net.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


WARMUP_STEPS = 40
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
    libc.mallopt(m_trim_threshold, 2 ** 31 - 1)


# Weight averaging (campaign run 2): validation between neighbouring steps swung by up to
# 1.6 dB on the real vocals (run 2, studio steps 800 and 819), so the weights shipped and
# validated are an exponential moving average over about the last 1 / (1 - EMA_DECAY) steps.
EMA_DECAY = 0.995


def train(preset: str, minutes: float, threads: int, batch: int, lr: float,
          run: str = "", front: str = "", init: str = "", steps: int = 0, vocals_weight: float = 0.0) -> None:
    """Train `preset` for `minutes` of wall clock; `run` names an experiment (its own
    checkpoint folder; its weights stay there), `front` overrides the preset's front end,
    `vocals_weight` weighs the vocals stem in the loss (0 keeps a resumed run's, 1 for a new one)."""
    keep_freed_memory()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    run = run or preset
    folder = CORPUS.parent / "train" / run
    folder.mkdir(parents=True, exist_ok=True)
    ckpt_path = folder / "checkpoint.pt"
    config = dict(PRESETS[preset], **({"front": front} if front else {}))
    net = MaskNet(**config)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    state = {"step": 0, "seconds": 0.0, "log": [], "config": {k: list(v) if isinstance(v, tuple) else v
                                                               for k, v in config.items()}}
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        state = ckpt["state"]
        print(f"resumed {run} at step {state['step']} ({state['seconds'] / 60:.1f} min trained)")
    else:
        # A new run starts from the given weights (default: the shipped preset's), taking
        # every tensor whose shape still fits; a changed front end starts fresh.
        source = Path(init) if init else WEIGHTS / f"{preset}.pt"
        if source.exists():
            fresh = load_matching(net, source)
            state["init"] = {"from": str(source.name), "fresh": fresh}
            print(f"{run}: initialised from {source} (fresh: {', '.join(fresh) or 'nothing'})")
    # The average starts from the weights the run starts or resumes with.
    averaged = copy.deepcopy(net)
    if ckpt_path.exists() and "averaged" in ckpt:
        averaged.load_state_dict(ckpt["averaged"])
    state.setdefault("averaged_since", state["step"])
    # A resumed run keeps its loss unless told otherwise; the change is logged with its step.
    if vocals_weight and vocals_weight != state.get("vocals_weight", 1.0):
        state.setdefault("changes", []).append({"step": state["step"], "vocals_weight": vocals_weight})
        state["vocals_weight"] = vocals_weight
    state.setdefault("vocals_weight", 1.0)
    print(f"{run}: vocals weigh {state['vocals_weight']} in the loss", flush=True)
    budget = minutes * 60
    data = Remixer(seed=state["step"])
    examples = validation_set()
    length = int(SEGMENT_SECONDS * RATE) // net.hop * net.hop

    def save() -> None:
        tmp = ckpt_path.with_suffix(".partial")
        torch.save({"model": net.state_dict(), "averaged": averaged.state_dict(), "opt": opt.state_dict(),
                    "state": state}, tmp)
        tmp.replace(ckpt_path)

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    last_save = time.time()
    if not state["log"]:
        scores = validate(net, examples)
        state["log"].append({"step": state["step"], "minutes": 0.0, "sdr": scores})
        print(f"{run} step {state['step']} held-out SDR {json.dumps(scores)}", flush=True)
    net.train()
    # The schedule follows the wall-clock budget, or a step budget (ablations compare
    # designs after the same number of steps, whatever else runs on the machine).
    def progress() -> float:
        return state["step"] / steps if steps else state["seconds"] / budget

    while progress() < 1 and not stop["now"]:
        t0 = time.time()
        rate = lr * min(1.0, (state["step"] + 1) / WARMUP_STEPS) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress())))
        for group in opt.param_groups:
            group["lr"] = rate
        loss = loss_fn(net, *data.batch(batch, length), vocals_weight=state["vocals_weight"])
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
            print(f"{run} step {state['step']} loss {loss.item():.4f} lr {rate:.2e} "
                  f"{state['seconds'] / 60:.1f} min, {100 * progress():.0f} %", flush=True)
        if state["step"] % VALIDATE_EVERY == 0:
            data.refresh()
            scores = validate(averaged, examples)
            state["log"].append({"step": state["step"], "minutes": state["seconds"] / 60, "sdr": scores})
            print(f"{run} step {state['step']} held-out SDR {json.dumps(scores)}", flush=True)
        if time.time() - last_save > 180:
            save()
            last_save = time.time()
    scores = validate(averaged, examples)
    state["log"].append({"step": state["step"], "minutes": state["seconds"] / 60, "sdr": scores})
    print(f"{run} step {state['step']} held-out SDR {json.dumps(scores)}", flush=True)
    save()
    out = WEIGHTS if run == preset else folder
    out.mkdir(exist_ok=True)
    torch.save(averaged.state_dict(), out / f"{preset}.pt")  # the averaged weights
    (out / f"{preset}.json").write_text(json.dumps(
        {"preset": preset, "run": run, "steps": state["step"], "train_minutes": round(state["seconds"] / 60, 1),
         "threads": threads, "batch": batch, "segment_seconds": SEGMENT_SECONDS, "config": state["config"],
         "averaged": {"decay": EMA_DECAY, "since_step": state["averaged_since"]},
         "vocals_weight": state["vocals_weight"], "changes": state.get("changes", []),
         "init": state.get("init"), "log": state["log"]}, indent=1))
    print(f"wrote {out / f'{preset}.pt'} after {state['step']} steps; "
          f"next: python build.py tune --preset {preset}")


SHARPNESS_GRID = (0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


def tune(preset: str, clips: int, threads: int) -> None:
    """Choose the mask sharpness of the trained `preset` on training clips."""
    torch.set_num_threads(threads)
    meta_path = WEIGHTS / f"{preset}.json"
    meta = json.loads(meta_path.read_text())
    examples = validation_set(clips // 2, clips // 2, split="train")
    net = MaskNet(**meta.get("config", PRESETS[preset]))
    net.load_state_dict(torch.load(WEIGHTS / f"{preset}.pt", weights_only=True))
    table = {}
    for sharpness in SHARPNESS_GRID:
        net.mask_sharpness = sharpness
        scores = validate(net, examples)
        values = [v for group in scores.values() for v in group.values()]
        table[str(sharpness)] = dict(scores, mean=round(float(np.mean(values)), 3))
        print(f"{preset} sharpness {sharpness}: {json.dumps(table[str(sharpness)])}", flush=True)
    best = max(SHARPNESS_GRID, key=lambda v: table[str(v)]["mean"])
    meta.update(mask_sharpness=best, mask_sharpness_tuning={"clips": f"{clips // 2} rendered and {clips // 2} real training excerpts",
                                                          "sdr": table})
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
    parser = argparse.ArgumentParser(prog="build.py train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--minutes", type=float, default=90, help="training budget (wall clock)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--run", default="", help="experiment name (its own checkpoint; weights stay in it)")
    parser.add_argument("--front", choices=("linear", "conv"), default="", help="override the preset's front end")
    parser.add_argument("--init", default="", help="weights to start a new run from (default: the shipped preset's)")
    parser.add_argument("--steps", type=int, default=0, help="a step budget instead of --minutes")
    parser.add_argument("--vocals-weight", type=float, default=0.0,
                        help="weigh the vocals stem this many times the others in the loss "
                             "(default: the resumed run's, else 1)")
    args = parser.parse_args(argv)
    train(args.preset, args.minutes, args.threads, args.batch, args.lr, args.run, args.front, args.init,
          args.steps, args.vocals_weight)


if __name__ == "__main__":
    main()
