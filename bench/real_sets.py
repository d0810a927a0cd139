"""The real held-out set for bench/quality.py: recordings no model was trained or tuned on.

models/real.py decodes them into <cache>/real/test/ (`python build.py real`): held-out
singers of MIR-1K (karaoke pairs: vocals and the accompaniment as a whole), a held-out
song of "Everything is Free" (four stems), and held-out voice banks (solo voices). This
module scores on them:

- separation: global SDR per known part (a karaoke pair's accompaniment is scored
  against drums + bass + other), on `--real-clips` excerpts spread over the set;
- solo voices: the share of a solo voice's energy that lands in the vocals stem, and
  the vocals SDR (the voice alone is the input and the reference);
- level invariance: vocals SDR at -20, 0 and +20 dB input gain, and its spread.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from models.corpus import STEMS
from models.real import REAL, load_real
from stemforge.apps.evaluate import global_sdr as sdr  # MDX SDR, the one definition

RATE = 44100
EXCERPT_S = 10.0
GAINS_DB = (-20.0, 0.0, 20.0)
PARTS = STEMS + ("accompaniment",)

Example = Tuple[str, str, Dict[str, np.ndarray], np.ndarray]  # name, source, references, mix


def excerpts(count: int, kinds: Tuple[str, ...] = ("karaoke", "multitrack")) -> List[Example]:
    """`count` excerpts of at most EXCERPT_S seconds spread over the held-out recordings of
    the given kinds: whole short clips (MIR-1K), several excerpts of a long song."""
    files = []
    for path in sorted((REAL / "test").glob("*.npz")):
        stems, info = load_real(path)
        if info["kind"] in kinds:
            files.append((path, stems, info))
    if not files:
        raise SystemExit(f"no real held-out recordings in {REAL / 'test'}: run python build.py real")
    out: List[Example] = []
    n_excerpt = int(EXCERPT_S * RATE)
    # Long recordings give several excerpts (one per EXCERPT_S * 3 seconds), short ones one.
    slots = []
    for path, stems, info in files:
        n = next(iter(stems.values())).shape[1]
        for k in range(max(1, n // (3 * n_excerpt))):
            slots.append((path, stems, info, k * 3 * n_excerpt))
    step = max(1, len(slots) / count)
    for j in range(min(count, len(slots))):
        path, stems, info, start = slots[int(j * step)]
        refs = {k: np.ascontiguousarray(v[:, start : start + n_excerpt]) for k, v in stems.items()}
        mix = sum(refs.values())
        if float(np.abs(mix).max()) < 1e-4:
            continue
        out.append((f"{path.stem}@{start / RATE:.0f}s", info["source"], refs, mix.astype(np.float32)))
    return out


def solo_voices(count: int) -> List[Example]:
    """Solo voices never trained on: the held-out singers' voices alone, the held-out
    song's vocals alone, and held-out voice banks (`vocals` recordings)."""
    out = []
    for name, source, refs, _ in excerpts(10**6, ("karaoke", "multitrack", "vocals")):
        voice = refs.get("vocals")
        if voice is not None and float(np.sqrt(np.mean(voice**2))) > 3e-3:
            out.append((name, source, {"vocals": voice}, voice))
    step = max(1, len(out) / count)
    return [out[int(j * step)] for j in range(min(count, len(out)))]


def parts_of(est: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    return dict(est, accompaniment=est["drums"] + est["bass"] + est["other"])


def oracle(refs: Dict[str, np.ndarray], mix: np.ndarray) -> Dict[str, np.ndarray]:
    """Ideal ratio masks from the known parts (four stems, or vocals + accompaniment); an
    accompaniment's estimate stands in `other`, so that drums + bass + other is it."""
    from bench.baselines import ideal_ratio_masks

    est = dict(zip(refs, ideal_ratio_masks(mix, np.stack(list(refs.values())))))
    z = np.zeros_like(mix)
    full = {s: est.get(s, z) for s in STEMS}
    if "accompaniment" in est:
        full["other"] = est["accompaniment"]
    return full


Estimator = Callable[[np.ndarray, Optional[Dict[str, np.ndarray]]], Dict[str, np.ndarray]]


def score_real(methods: Dict[str, Estimator], examples: List[Example]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """method -> part -> example -> global SDR; a line per example."""
    out: Dict[str, Dict[str, Dict[str, float]]] = {m: {p: {} for p in PARTS} for m in methods}
    for name, _source, refs, mix in examples:
        cells = []
        for m, estimate in methods.items():
            est = parts_of(estimate(mix, refs))
            values = [sdr(ref, est[p]) for p, ref in refs.items() if float(np.abs(ref).max()) >= 1e-4]
            for p, ref in refs.items():
                if float(np.abs(ref).max()) >= 1e-4:
                    out[m][p][name] = sdr(ref, est[p])
            cells.append(f"{m} {np.mean(values):6.2f}")
        print(f"  {name[:34]:<34} | " + " | ".join(cells), flush=True)
    return out


def summarise_real(scores: Dict[str, Dict[str, Dict[str, float]]]) -> Dict[str, Dict[str, float]]:
    """method -> part -> mean SDR (NaN where the part never occurs), plus `mean` over the stems."""
    out = {}
    for m, parts in scores.items():
        row = {p: float(np.mean(list(v.values()))) if v else float("nan") for p, v in parts.items()}
        stems = [row[s] for s in STEMS if not math.isnan(row[s])]
        row["mean"] = float(np.mean(stems)) if stems else float("nan")
        out[m] = row
    return out


def solo_voice_figures(methods: Dict[str, Estimator], voices: List[Example]) -> Dict[str, Dict[str, float]]:
    """method -> {"share": mean % of the energy in vocals, "sdr": mean vocals SDR}."""
    out = {}
    for m, estimate in methods.items():
        shares, sdrs = [], []
        for _name, _source, _refs, voice in voices:
            est = estimate(voice, None)
            total = sum(float(np.sum(est[s].astype(np.float64) ** 2)) for s in STEMS)
            shares.append(100 * float(np.sum(est["vocals"].astype(np.float64) ** 2)) / max(total, 1e-20))
            sdrs.append(sdr(voice, est["vocals"]))
        out[m] = {"share": float(np.mean(shares)), "sdr": float(np.mean(sdrs)), "worst_share": float(np.min(shares))}
        print(
            f"  {m:<16} solo voice in vocals {out[m]['share']:5.1f}% (worst {out[m]['worst_share']:5.1f}%), "
            f"vocals SDR {out[m]['sdr']:6.2f} dB over {len(voices)} voices",
            flush=True,
        )
    return out


def level_figures(methods: Dict[str, Estimator], examples: List[Example]) -> Dict[str, Dict[str, float]]:
    """method -> {gain: mean vocals SDR, "spread": max - min} over examples with vocals."""
    with_vocals = [e for e in examples if "vocals" in e[2] and float(np.abs(e[2]["vocals"]).max()) >= 1e-3]
    out = {}
    for m, estimate in methods.items():
        row = {}
        for g in GAINS_DB:
            k = np.float32(10 ** (g / 20))
            row[f"{g:+.0f} dB"] = float(
                np.mean([sdr(refs["vocals"] * k, estimate(mix * k, None)["vocals"]) for _, _, refs, mix in with_vocals])
            )
        values = list(row.values())
        row["spread"] = max(values) - min(values)
        out[m] = row
        print(f"  {m:<16} vocals SDR " + "  ".join(f"{k} {v:6.2f}" for k, v in row.items()), flush=True)
    return out
