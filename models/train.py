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

WEIGHTS = Path(__file__).resolve().parent / "weights"
SEGMENT_SECONDS = 4.0


class Remixer:
    """Random training mixtures from the corpus's training clips."""

    def __init__(self, split: str = "train", seed: int = 0):
        self.split, self.rng = split, random.Random(seed)
        self.refresh()

    def refresh(self) -> None:
        """The corpus may still be rendering: pick up new clips."""
        self.files = sorted((CORPUS / self.split).glob("clip-*.npz"))
        if not self.files:
            raise SystemExit(f"no clips in {CORPUS / self.split}: run python build.py data first")

    def segment(self, length: int) -> np.ndarray:
        """(4, 2, length) stems: each from a random clip (half the time all from one)."""
        same = self.rng.random() < 0.5
        clip = load_clip(self.rng.choice(self.files)) if same else None
        out = np.zeros((4, 2, length), np.float32)
        for i in range(4):
            source = clip if same else load_clip(self.rng.choice(self.files))
            start = self.rng.randrange(0, source.shape[2] - length)
            x = source[i, :, start:start + length]
            if self.rng.random() < 0.5:
                x = x[::-1]  # swap channels
            if self.rng.random() < 0.1:
                continue  # a silent stem
            out[i] = x * 10 ** (self.rng.uniform(-9, 3) / 20)
        return out

    def batch(self, size: int, length: int) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.segment(length) for _ in range(size)]))


def loss_fn(net: MaskNet, stems: torch.Tensor) -> torch.Tensor:
    """L1 distance between the masked mixture spectra and the true stems' spectra, in
    the network's own STFT frames: the same objective as comparing waveforms (the
    synthesis is a fixed linear map), without paying an inverse STFT and another STFT."""
    mix = stems.sum(1)
    k = net.lookahead_frames
    spec_mix = net.spectra(mix)  # (B, C, frames, bins)
    with torch.no_grad():
        spec_ref = net.spectra(stems)  # (B, S, C, frames, bins)
    masks = net.masks(spec_mix)[:, :, :, k:]
    frames = masks.shape[3]
    est = masks * spec_mix[:, None, :, :frames]
    return (est - spec_ref[:, :, :, :frames]).abs().mean()


def sdr(est: np.ndarray, ref: np.ndarray) -> float:
    """Global SDR in dB (the MDX convention)."""
    return float(10 * np.log10((np.sum(ref ** 2) + 1e-8) / (np.sum((ref - est) ** 2) + 1e-8)))


@torch.no_grad()
def validate(net: MaskNet, clips: list) -> dict:
    net.eval()
    scores = {s: [] for s in STEMS}
    for path in clips:
        stems = torch.from_numpy(load_clip(path))
        mix = stems.sum(0, keepdim=True)
        pad = net.lookahead_samples + net.hop
        padded = torch.nn.functional.pad(mix, (0, pad - mix.shape[-1] % net.hop + net.hop))
        y, _ = net(padded, net.initial_state(1))
        y = y[0, ..., net.lookahead_samples:net.lookahead_samples + stems.shape[-1]].numpy()
        for i, s in enumerate(STEMS):
            if np.abs(stems[i].numpy()).max() > 1e-4:
                scores[s].append(sdr(y[i], stems[i].numpy()))
    net.train()
    return {s: round(float(np.mean(v)), 2) for s, v in scores.items() if v}


def train(preset: str, minutes: float, threads: int, batch: int, lr: float) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    folder = CORPUS.parent / "train" / preset
    folder.mkdir(parents=True, exist_ok=True)
    ckpt_path = folder / "checkpoint.pt"
    net = MaskNet(**PRESETS[preset])
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    state = {"step": 0, "seconds": 0.0, "log": []}
    fresh_optimiser_at = 0  # the step from which Adam's moments start: warm up from there
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        state = ckpt["state"]
        print(f"resumed {preset} at step {state['step']} ({state['seconds'] / 60:.1f} min trained)")
    elif (WEIGHTS / f"{preset}.pt").exists():
        # No checkpoint (a fresh machine) but shipped weights: go on training from them,
        # with a fresh optimiser, continuing their step count and learning-rate schedule.
        net.load_state_dict(torch.load(WEIGHTS / f"{preset}.pt", weights_only=True))
        shipped = json.loads((WEIGHTS / f"{preset}.json").read_text())
        state = {"step": shipped["steps"], "seconds": shipped["train_minutes"] * 60, "log": shipped["log"]}
        fresh_optimiser_at = state["step"]
        print(f"continuing {preset} from {WEIGHTS / f'{preset}.pt'} at step {state['step']}")
    budget = minutes * 60
    data = Remixer(seed=state["step"])
    val_clips = sorted((CORPUS / "test").glob("clip-*.npz"))[:12]
    length = int(SEGMENT_SECONDS * RATE) // net.hop * net.hop

    def save() -> None:
        tmp = ckpt_path.with_suffix(".partial")
        torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "state": state}, tmp)
        tmp.replace(ckpt_path)

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    last_save = time.time()
    net.train()
    while state["seconds"] < budget and not stop["now"]:
        t0 = time.time()
        progress = state["seconds"] / budget
        rate = lr * min(1.0, (state["step"] - fresh_optimiser_at + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in opt.param_groups:
            group["lr"] = rate
        loss = loss_fn(net, data.batch(batch, length))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        state["step"] += 1
        state["seconds"] += time.time() - t0
        if state["step"] % 20 == 0:
            print(f"{preset} step {state['step']} loss {loss.item():.4f} lr {rate:.2e} "
                  f"{state['seconds'] / 60:.1f}/{minutes:g} min", flush=True)
        if state["step"] % 200 == 0:
            data.refresh()
            scores = validate(net, val_clips)
            state["log"].append({"step": state["step"], "minutes": state["seconds"] / 60, "sdr": scores})
            print(f"{preset} step {state['step']} held-out SDR {json.dumps(scores)}", flush=True)
        if time.time() - last_save > 180:
            save()
            last_save = time.time()
    save()
    WEIGHTS.mkdir(exist_ok=True)
    torch.save(net.state_dict(), WEIGHTS / f"{preset}.pt")
    (WEIGHTS / f"{preset}.json").write_text(json.dumps(
        {"preset": preset, "steps": state["step"], "train_minutes": round(state["seconds"] / 60, 1),
         "threads": threads, "batch": batch, "segment_seconds": SEGMENT_SECONDS,
         "log": state["log"]}, indent=1))
    print(f"wrote {WEIGHTS / f'{preset}.pt'} after {state['step']} steps; "
          f"next: python build.py tune --preset {preset}")


SHARPNESS_GRID = (0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


def tune(preset: str, clips: int, threads: int) -> None:
    """Choose the mask sharpness of the trained `preset` on training clips."""
    torch.set_num_threads(threads)
    meta_path = WEIGHTS / f"{preset}.json"
    meta = json.loads(meta_path.read_text())
    paths = sorted((CORPUS / "train").glob("clip-*.npz"))[:clips]
    if len(paths) < clips:
        raise SystemExit(f"only {len(paths)} training clips in {CORPUS / 'train'}; "
                         f"render more with `python build.py data` or pass --clips {len(paths)}")
    net = MaskNet(**PRESETS[preset])
    net.load_state_dict(torch.load(WEIGHTS / f"{preset}.pt", weights_only=True))
    table = {}
    for sharpness in SHARPNESS_GRID:
        net.mask_sharpness = sharpness
        scores = validate(net, paths)
        table[str(sharpness)] = dict(scores, mean=round(float(np.mean(list(scores.values()))), 3))
        print(f"{preset} sharpness {sharpness}: {json.dumps(table[str(sharpness)])}", flush=True)
    best = max(SHARPNESS_GRID, key=lambda v: table[str(v)]["mean"])
    meta.update(mask_sharpness=best, mask_sharpness_tuning={"clips": f"first {clips} training clips",
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
    args = parser.parse_args(argv)
    train(args.preset, args.minutes, args.threads, args.batch, args.lr)


if __name__ == "__main__":
    main()
