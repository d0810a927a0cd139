#!/usr/bin/env python3
"""The real-band section of bench/quality.py: real pop and rock songs with their true stems.

    python -m bench.real_band [--model NAME ...] [--threads 1] [--placement]

Songs: the MUSDB18 test songs of models/band_validation.py (validation only: measured
and used to choose, never trained on, never committed). Rows: `mix` (the input SDR),
`IRM oracle`, `DSP baseline` and each model; columns: global SDR (MDX convention) of
drums, bass, other and vocals, each over a whole song and averaged over the songs, and
their 4-stem mean.

Placement consistency (--placement): a DAW renders a region moved on its timeline as the
same audio preceded by k samples of silence. The figure is the SDR between the stems of a
song excerpt and the stems of the same excerpt delayed by k samples (k not a multiple of
any model's hop), taking the first as the reference, mean over the four stems, over the
whole excerpt and over its last 2 seconds; 60 dB and above means the same stems.

A benchmark, not a test: it prints figures and exits 0.
"""

from __future__ import annotations

import argparse
from typing import Callable, Dict, List, Tuple

import numpy as np

from bench.baselines import dsp_baseline, irm_oracle
from models import band_validation
from stemforge.apps.evaluate import global_sdr

RATE = 44100
STEMS = band_validation.STEMS
PLACEMENT_SHIFTS = (300, 4410)  # neither a multiple of live's hop (256) nor of studio's (512)
PLACEMENT_SECONDS = 10.0
TAIL_SECONDS = 2.0

Estimator = Callable[[np.ndarray, np.ndarray], Dict[str, np.ndarray]]  # (mix, true stems) -> stems


def mix_estimates(mix: np.ndarray, stems: np.ndarray) -> Dict[str, np.ndarray]:
    return {s: mix for s in STEMS}


def score(methods: Dict[str, Estimator], songs: List[Tuple[str, np.ndarray]]) -> Dict[str, Dict[str, float]]:
    """method -> stem -> mean over songs of the whole-song global SDR, plus "mean"; a line per song."""
    per: Dict[str, Dict[str, List[float]]] = {m: {s: [] for s in STEMS} for m in methods}
    for name, stems in songs:
        mix = stems.sum(0)
        cells = []
        for m, estimate in methods.items():
            est = estimate(mix, stems)
            values = [global_sdr(stems[i], np.asarray(est[s], np.float32)) for i, s in enumerate(STEMS)]
            for s, v in zip(STEMS, values):
                per[m][s].append(v)
            cells.append(f"{m} {np.mean(values):6.2f}")
        print(f"  {name[:34]:<34} | " + " | ".join(cells), flush=True)
    out = {}
    for m, d in per.items():
        row = {s: float(np.mean(v)) for s, v in d.items()}
        row["mean"] = float(np.mean([row[s] for s in STEMS]))
        out[m] = row
    return out


def print_table(summary: Dict[str, Dict[str, float]], title: str) -> None:
    cols = STEMS + ("mean",)
    print(f"\n{title}")
    print(f"{'method':<16}" + "".join(f"{c:>9}" for c in cols))
    for m, row in summary.items():
        print(f"{m:<16}" + "".join(f"{row[c]:9.2f}" for c in cols))


def placement(estimate: Estimator, stems: np.ndarray, shift: int) -> Tuple[float, float]:
    """(whole, last 2 s) mean-over-stems SDR between the stems of an excerpt and those of the
    excerpt delayed by `shift` samples."""
    mix = np.ascontiguousarray(stems.sum(0)[:, : int(PLACEMENT_SECONDS * RATE)])
    a = estimate(mix, None)
    b = estimate(np.pad(mix, ((0, 0), (shift, 0))), None)
    tail = int(TAIL_SECONDS * RATE)
    whole, last = [], []
    for s in STEMS:
        x, y = np.asarray(a[s], np.float32), np.asarray(b[s], np.float32)[:, shift:]
        if float(np.abs(x).max()) < 1e-4:
            continue
        whole.append(min(global_sdr(x, y), 99.0))
        last.append(min(global_sdr(x[:, -tail:], y[:, -tail:]), 99.0))
    return float(np.mean(whole)), float(np.mean(last))


def placement_figures(methods: Dict[str, Estimator], songs: List[Tuple[str, np.ndarray]]) -> Dict[str, dict]:
    """method -> "k=<shift>" -> {"whole", "last2s"}: mean over the songs' first 10 s."""
    out: Dict[str, dict] = {}
    for m, estimate in methods.items():
        row = {}
        for k in PLACEMENT_SHIFTS:
            pairs = [placement(estimate, stems, k) for _, stems in songs]
            row[f"k={k}"] = {
                "whole": float(np.mean([p[0] for p in pairs])),
                "last2s": float(np.mean([p[1] for p in pairs])),
            }
        out[m] = row
        print(
            f"  {m:<16} "
            + "  ".join(
                f"k={k}: {row[f'k={k}']['whole']:6.2f} dB (last 2 s {row[f'k={k}']['last2s']:6.2f})"
                for k in PLACEMENT_SHIFTS
            ),
            flush=True,
        )
    return out


def model_estimator(name: str) -> Estimator:
    import stemforge

    model = stemforge.load_model(name)

    def estimate(mix: np.ndarray, stems=None) -> Dict[str, np.ndarray]:
        return stemforge.separate(mix, RATE, model)

    return estimate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="model name or file, repeatable (default: studio, live)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--placement", action="store_true", help="also measure placement consistency")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    try:
        songs = band_validation.songs()
    except band_validation.MissingValidationSet as e:
        raise SystemExit(str(e))
    models = {m: model_estimator(m) for m in (args.model or ["studio", "live"])}
    methods = {
        "mix": mix_estimates,
        "IRM oracle": lambda mix, st: irm_oracle(mix, st),
        "DSP baseline": dsp_baseline,
        **models,
    }
    print(
        f"real band: {len(songs)} songs, {sum(s.shape[-1] for _, s in songs) / RATE:.1f} s "
        f"(validation only); per song: mean global SDR over the four stems"
    )
    print_table(score(methods, songs), "real band (global SDR, dB, mean over songs)")
    if args.placement:
        print(
            f"\nplacement consistency: SDR between the stems of the first {PLACEMENT_SECONDS:g} s and "
            f"those of the same audio delayed by k samples (dB, mean over stems and songs)"
        )
        placement_figures(models, songs)


if __name__ == "__main__":
    main()
