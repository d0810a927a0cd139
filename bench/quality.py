#!/usr/bin/env python3
"""Stem separation quality, side by side: input SDR, an oracle, a DSP baseline and models.

    python bench/quality.py [--model NAME ...] [--clips 40] [--museval-clips 10]
                            [--songs 6] [--speech 20] [--threads 2] [--json PATH]

In one run, printing as it goes:

1. Held-out corpus (the first --clips files of CORPUS/test/clip-*.npz, the mix
   being the exact sum of the stems). Rows: `mix` (every estimate is the mix:
   the input SDR), `IRM oracle` (ideal ratio masks from the true stems),
   `DSP baseline` (HPSS + low-pass bass + REPET-SIM vocals, librosa only) and
   each --model. Per stem, two figures:
   - global SDR, MDX convention, 10 log10(sum ref^2 / sum (ref - est)^2) over
     the whole clip, mean over the clips where the stem is not silent;
   - museval (SiSEC) SDR: median over 1 s frames, then median over the first
     --museval-clips clips (museval is slow).
   The `mean` column is the mean over the four stems.
2. Real music never trained on (DSP baseline and models only):
   - vocal leakage on instrumental game music (hyperrogue, singularity):
     10 log10(energy(vocals) / energy(mix)) of a 30 s excerpt at 20 s; lower is better;
   - vocal recall on telephone speech prompts (asterisk, 8 kHz voices never
     trained on): the share of the stems' energy that lands in `vocals`.
3. The issue's targets next to the measured figures, met or missed by how much.
   The SDR targets name `studio` and `live`; when a run lacks them, the first
   and second --model stand in, and the table says so.

A benchmark, not a test: it prints figures and always exits 0.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "models"))
sys.path.insert(0, str(ROOT))
from corpus import CORPUS, STEMS, load_clip  # noqa: E402

import stemforge  # noqa: E402
from stemforge.apps import evaluate  # noqa: E402
from stemforge.apps.evaluate import SDR_EPS  # noqa: E402

RATE = 44100
N_FFT, HOP = 2048, 512
SILENT = 1e-4            # a reference with max |x| below this is silent: no SDR for it
BASS_CUTOFF_HZ = 200.0
SONG_DIRS = (Path("/usr/share/hyperrogue/music"), Path("/usr/share/games/singularity/music"))
SPEECH_DIR = Path("/usr/share/asterisk/sounds/en")
EXCERPT_START_S, EXCERPT_S = 20.0, 30.0

Stems = Dict[str, np.ndarray]                      # stem -> (2, n) float32
Estimator = Callable[[np.ndarray, np.ndarray], Stems]  # (mix, true stems or None) -> estimates
Scores = Dict[str, Dict[str, Dict[str, float]]]    # "global"/"museval" -> stem -> clip -> dB


# -- methods ---------------------------------------------------------------------------

def mix_estimates(mix: np.ndarray, stems: Optional[np.ndarray] = None) -> Stems:
    """Every stem's estimate is the mixture: the input SDR."""
    return {s: mix for s in STEMS}


def stft(x: np.ndarray) -> np.ndarray:
    """(..., n) -> (..., bins, frames) complex64."""
    import librosa
    return librosa.stft(x, n_fft=N_FFT, hop_length=HOP)


def istft(spec: np.ndarray, n: int) -> np.ndarray:
    import librosa
    return librosa.istft(spec, hop_length=HOP, n_fft=N_FFT, length=n).astype(np.float32)


def irm_oracle(mix: np.ndarray, stems: np.ndarray) -> Stems:
    """Ideal ratio masks |S_i|^2 / sum_j |S_j|^2 from the true stems, applied to the mix."""
    n = mix.shape[-1]
    power = np.abs(stft(stems)) ** 2                       # (4, 2, bins, frames)
    masks = power / np.maximum(power.sum(axis=0, keepdims=True), np.finfo(np.float32).tiny)
    spec = stft(mix)                                       # (2, bins, frames)
    return {s: istft(masks[i] * spec, n) for i, s in enumerate(STEMS)}


def repet_sim(spec: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """librosa's "vocal separation" example on one channel: (foreground, background) spectra."""
    import librosa
    full = np.abs(spec)
    frames = full.shape[1]
    width = min(int(librosa.time_to_frames(2, sr=RATE, hop_length=HOP)), (frames - 1) // 2 - 1)
    if width < 1:  # too short for a repetition model: all background
        return np.zeros_like(spec), spec
    with np.errstate(invalid="ignore", divide="ignore"):
        filt = librosa.decompose.nn_filter(full, aggregate=np.median, metric="cosine", width=width)
    filt = np.minimum(full, np.nan_to_num(filt))
    mask_bg = librosa.util.softmask(filt, 2 * (full - filt), power=2)
    mask_fg = librosa.util.softmask(full - filt, 10 * filt, power=2)
    return mask_fg * spec, mask_bg * spec


def dsp_channel(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One channel: (drums, bass, vocals) by HPSS, a 200 Hz split and REPET-SIM."""
    import librosa
    n = x.shape[-1]
    harmonic, percussive = librosa.decompose.hpss(stft(x))
    low = librosa.fft_frequencies(sr=RATE, n_fft=N_FFT) <= BASS_CUTOFF_HZ
    bass = np.where(low[:, None], harmonic, 0)
    vocals, _ = repet_sim(np.where(low[:, None], 0, harmonic))
    return istft(percussive, n), istft(bass, n), istft(vocals, n)


def dsp_baseline(mix: np.ndarray, stems: Optional[np.ndarray] = None) -> Stems:
    """Classic DSP per channel; `other` takes the residual, so the estimates sum to the mix."""
    drums, bass, vocals = (np.stack(parts) for parts in zip(*(dsp_channel(ch) for ch in mix)))
    return {"drums": drums, "bass": bass, "other": mix - drums - bass - vocals, "vocals": vocals}


def model_estimator(model: stemforge.Model) -> Estimator:
    missing = [s for s in STEMS if s not in model.stems]
    if missing:
        print(f"note: {model.name} has no {', '.join(missing)} stem: estimated as silence")

    def estimate(mix: np.ndarray, stems: Optional[np.ndarray] = None) -> Stems:
        out = stemforge.separate(mix, RATE, model)
        return {s: np.asarray(out[s], np.float32) if s in out else np.zeros_like(mix)
                for s in STEMS}
    return estimate


# -- metrics ---------------------------------------------------------------------------

def energy(x: np.ndarray) -> float:
    return float(np.sum(np.square(x), dtype=np.float64))


def global_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """MDX-challenge SDR over the whole clip, both channels (stemforge evaluate's)."""
    return evaluate.global_sdr(ref, est)


def audible(stems: np.ndarray) -> List[int]:
    return [i for i in range(len(STEMS)) if np.max(np.abs(stems[i])) >= SILENT]


def museval_medians(stems: np.ndarray, est: Stems, which: List[int]) -> Dict[str, float]:
    """SiSEC SDR (median over 1 s frames) of the stems `which`, evaluated together, as
    `stemforge evaluate` computes it."""
    medians = evaluate.museval_medians([stems[i] for i in which], [est[STEMS[i]] for i in which], RATE)
    return {STEMS[i]: m["sdr"] for i, m in zip(which, medians)}


# -- the held-out corpus -----------------------------------------------------------------

def new_scores() -> Scores:
    return {"global": {s: {} for s in STEMS}, "museval": {s: {} for s in STEMS}}


def score_clip(name: str, stems: np.ndarray, est: Stems, scores: Scores, with_museval: bool) -> None:
    which = audible(stems)
    for i in which:
        scores["global"][STEMS[i]][name] = global_sdr(stems[i], est[STEMS[i]])
    if with_museval and which:
        for s, v in museval_medians(stems, est, which).items():
            scores["museval"][s][name] = v


def nan_stat(values: List[float], stat: Callable) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(stat(vals)) if vals else float("nan")


def summarise(scores: Scores) -> Dict[str, Dict[str, float]]:
    """stem or "mean" -> {"global": mean over clips, "museval": median over clips}."""
    out = {s: {"global": nan_stat(list(scores["global"][s].values()), np.mean),
               "museval": nan_stat(list(scores["museval"][s].values()), np.median)}
           for s in STEMS}
    out["mean"] = {k: nan_stat([out[s][k] for s in STEMS], np.mean) for k in ("global", "museval")}
    return out


def clip_mean(scores: Scores, name: str) -> float:
    return nan_stat([scores["global"][s][name] for s in STEMS if name in scores["global"][s]], np.mean)


def run_split(methods: Dict[str, Estimator], files: List[Path], museval_clips: int) -> Dict[str, dict]:
    """Score every method on every clip, one progress line per clip."""
    results = {m: {"scores": new_scores(), "seconds": [], "museval_seconds": []} for m in methods}
    for k, path in enumerate(files):
        stems = load_clip(path)
        mix = stems.sum(axis=0)
        line = [f"{path.stem} {mix.shape[-1] / RATE:4.1f}s"]
        for m, estimate in methods.items():
            r = results[m]
            start = time.perf_counter()
            est = estimate(mix, stems)
            r["seconds"].append(time.perf_counter() - start)
            start = time.perf_counter()
            score_clip(path.stem, stems, est, r["scores"], k < museval_clips)
            if k < museval_clips:
                r["museval_seconds"].append(time.perf_counter() - start)
            line.append(f"{m} {clip_mean(r['scores'], path.stem):6.2f}")
        print("  " + " | ".join(line), flush=True)
    return results


def fmt(v: float, width: int = 7) -> str:
    return f"{'-':>{width}}" if math.isnan(v) else f"{v:{width}.2f}"


def print_table(summaries: Dict[str, Dict[str, Dict[str, float]]], seconds: Dict[str, Tuple[float, float]]) -> None:
    cols = list(STEMS) + ["mean"]
    print(f"\n{'':<16}" + "".join(f"{c:^16}" for c in cols) + f"{'s/clip':>9}{'museval':>9}")
    print(f"{'method':<16}" + "".join(f"{'global':>8}{'museval':>8}" for _ in cols)
          + f"{'separate':>9}{'s/clip':>9}")
    for m, summ in summaries.items():
        cells = "".join(f" {fmt(summ[c]['global'])} {fmt(summ[c]['museval'])}" for c in cols)
        sep_s, mus_s = seconds[m]
        print(f"{m:<16}{cells}{fmt(sep_s, 9)}{fmt(mus_s, 9)}")
    print("global: mean over clips of whole-clip SDR (MDX); museval: median over clips of the "
          "median over 1 s frames (SiSEC); dB, higher is better; silent stems skipped")


# -- real music never trained on ---------------------------------------------------------

def read_audio(path: Path, start_s: float = 0.0, seconds: Optional[float] = None) -> np.ndarray:
    """(2, n) float32 at 44.1 kHz; mono duplicated; the whole file if shorter than start + seconds."""
    from pedalboard.io import AudioFile
    with AudioFile(str(path)).resampled_to(RATE) as f:
        total = f.frames
        start, n = 0, total
        if seconds is not None and total >= int((start_s + seconds) * RATE):
            start, n = int(start_s * RATE), int(seconds * RATE)
        f.seek(start)
        x = f.read(n).astype(np.float32)
    x = np.repeat(x, 2, axis=0) if x.shape[0] == 1 else x[:2]
    return np.ascontiguousarray(x)


def song_files(k: int) -> List[Path]:
    """ceil(k/2) songs from the first folder, the rest from the second (sorted)."""
    first = (k + 1) // 2
    return (sorted(SONG_DIRS[0].glob("*.ogg"))[:first] + sorted(SONG_DIRS[1].glob("*.ogg"))[:k - first])


def speech_files(k: int) -> List[Path]:
    from pedalboard.io import AudioFile
    out = []
    for p in sorted(SPEECH_DIR.glob("*.wav")):
        if len(out) == k:
            break
        with AudioFile(str(p)) as f:
            if f.duration > 1.0:
                out.append(p)
    return out


def vocal_leakage(methods: Dict[str, Estimator], songs: List[Path]) -> Dict[str, Dict[str, float]]:
    """method -> track -> 10 log10(energy(vocals) / energy(mix)) dB, plus "mean"."""
    out = {m: {} for m in methods}
    for p in songs:
        mix = read_audio(p, EXCERPT_START_S, EXCERPT_S)
        cells = []
        for m, estimate in methods.items():
            vocals = estimate(mix, None)["vocals"]
            out[m][p.name] = 10 * math.log10((energy(vocals) + SDR_EPS) / (energy(mix) + SDR_EPS))
            cells.append(f"{m} {out[m][p.name]:7.2f}")
        print(f"  {p.name[:32]:<32} {mix.shape[-1] / RATE:5.1f}s | " + " | ".join(cells), flush=True)
    for m in methods:
        out[m]["mean"] = nan_stat(list(out[m].values()), np.mean)
    return out


def vocal_recall(methods: Dict[str, Estimator], files: List[Path]) -> Dict[str, Dict[str, float]]:
    """method -> file -> % of the stems' energy in vocals, plus "mean"."""
    out = {m: {} for m in methods}
    for p in files:
        mix = read_audio(p)
        mix = mix * np.float32(0.5 / max(float(np.max(np.abs(mix))), 1e-9))
        cells = []
        for m, estimate in methods.items():
            est = estimate(mix, None)
            total = sum(energy(est[s]) for s in STEMS)
            out[m][p.name] = 100 * energy(est["vocals"]) / total if total > 0 else float("nan")
            cells.append(f"{m} {out[m][p.name]:6.1f}%")
        print(f"  {p.name[:32]:<32} {mix.shape[-1] / RATE:5.1f}s | " + " | ".join(cells), flush=True)
    for m in methods:
        out[m]["mean"] = nan_stat(list(out[m].values()), np.mean)
    return out


# -- the targets -------------------------------------------------------------------

def verdict(value: float, bound: float, at_least: bool, unit: str) -> str:
    if math.isnan(value):
        return "not measured"
    gap = bound - value if at_least else value - bound
    return "met" if gap <= 0 else f"missed by {gap:.2f} {unit}"


def role(models: List[str], name: str, index: int) -> Optional[str]:
    """The model named `name`, else the index-th model evaluated (a stand-in), else None."""
    if name in models:
        return name
    return models[index] if len(models) > index else None


def targets(models: List[str], split: Dict[str, dict], leakage: Dict[str, Dict[str, float]],
            recall: Dict[str, Dict[str, float]]) -> List[dict]:
    nan = float("nan")
    studio, live = role(models, "studio", 0), role(models, "live", 1)
    live = None if live == studio else live

    def mean_of(m: Optional[str], stem: str = "mean") -> float:
        return split[m]["summary"][stem]["global"] if m in split else nan

    def tag(m: Optional[str], name: str) -> str:
        return name if m == name else f"{m or name} (for {name})" if m else f"{name} (not run)"

    dsp = mean_of("DSP baseline")
    rows = [
        (f"{tag(studio, 'studio')} mean SDR - DSP baseline's", mean_of(studio) - dsp, 4.0, True, "dB"),
        (f"{tag(studio, 'studio')} vocals SDR", mean_of(studio, "vocals"), 8.0, True, "dB"),
        (f"{tag(live, 'live')} mean SDR - {tag(studio, 'studio')}'s", mean_of(live) - mean_of(studio),
         -2.0, True, "dB"),
    ]
    for m in models:
        rows.append((f"{m} vocal leakage (instrumentals)", leakage.get(m, {}).get("mean", nan), -15.0, False, "dB"))
        rows.append((f"{m} vocal recall (speech)", recall.get(m, {}).get("mean", nan), 90.0, True, "%"))
    return [dict(target=t, measured=v, bound=b, at_least=a, unit=u, verdict=verdict(v, b, a, u))
            for t, v, b, a, u in rows]


def print_targets(rows: List[dict]) -> None:
    print(f"\n{'target':<58}{'bound':>10}{'measured':>11}  verdict")
    for r in rows:
        bound = f"{'>=' if r['at_least'] else '<='} {r['bound']:g} {r['unit']}"
        print(f"{r['target']:<58}{bound:>10}{fmt(r['measured'], 9)} {r['unit']:<2} {r['verdict']}")


# -- main --------------------------------------------------------------------------------

def load_models(names: List[str]) -> Dict[str, Estimator]:
    out = {}
    for name in names:
        try:
            out[name] = model_estimator(stemforge.load_model(name))
        except stemforge.ModelError as e:
            print(f"note: skipping model {name!r}: {e}")
    return out


def jsonable(x):
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=40, help="held-out clips to score")
    parser.add_argument("--museval-clips", type=int, default=10, help="of which scored by museval too")
    parser.add_argument("--songs", type=int, default=6, help="instrumental tracks (half from each folder)")
    parser.add_argument("--speech", type=int, default=20, help="speech prompts longer than 1 s")
    parser.add_argument("--model", action="append", help="model name or file, repeatable (default: studio, live)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    models = load_models(args.model or ["studio", "live"])
    baseline = {"DSP baseline": dsp_baseline}
    methods = {"mix": mix_estimates, "IRM oracle": irm_oracle, **baseline, **models}

    files = sorted((CORPUS / "test").glob("clip-*.npz"))[:args.clips]
    print(f"held-out split: {len(files)} clips of {CORPUS / 'test'}, museval on the first "
          f"{min(args.museval_clips, len(files))}; torch threads {args.threads}; "
          f"per clip: mean global SDR over its audible stems (dB)")
    start = time.perf_counter()
    split = run_split(methods, files, args.museval_clips)
    for r in split.values():
        r["summary"] = summarise(r["scores"])
    print_table({m: r["summary"] for m, r in split.items()},
                {m: (nan_stat(r["seconds"], np.mean), nan_stat(r["museval_seconds"], np.mean))
                 for m, r in split.items()})
    print(f"held-out split took {time.perf_counter() - start:.0f} s")

    real = {**baseline, **models}
    songs = song_files(args.songs)
    print(f"\nvocal leakage on {len(songs)} instrumental tracks, 10 log10(E vocals / E mix) dB, lower is better")
    leakage = vocal_leakage(real, songs)
    print("  " + " | ".join(f"{m} mean {leakage[m]['mean']:.2f} dB" for m in real))
    speech = speech_files(args.speech)
    print(f"\nvocal recall on {len(speech)} speech prompts, % of the stems' energy in vocals, higher is better")
    recall = vocal_recall(real, speech)
    print("  " + " | ".join(f"{m} mean {recall[m]['mean']:.1f}%" for m in real))

    rows = targets(list(models), split, leakage, recall)
    print_targets(rows)
    if args.json:
        args.json.write_text(json.dumps(jsonable(dict(
            args={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            clips=[p.stem for p in files],
            split={m: dict(summary=r["summary"], per_clip=r["scores"], seconds=r["seconds"],
                           museval_seconds=r["museval_seconds"]) for m, r in split.items()},
            leakage=leakage, recall=recall, targets=rows)), indent=1))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
