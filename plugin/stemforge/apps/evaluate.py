"""The standard separation metrics, for `stemforge evaluate` and bench/.

Per stem of a track:
- ``sdr``, ``sir``, ``sar``, ``isr``: BSS Eval v4 (museval's figures, computed
  by ``stemforge.apps.bsseval`` without museval's package), each the median
  over 1-second frames (the SiSEC convention; silent frames give NaN and are
  left out of the median);
- ``global_sdr``: 10 log10(sum ref^2 / sum (ref - est)^2) over the whole track
  and both channels (the MDX convention, with its small epsilon);
- ``nsdr``: global SDR of the estimate minus global SDR of the mixture taken
  as the estimate: what separating gained over doing nothing.

A track is a folder of ``<stem>.wav`` (any format pedalboard reads); the
mixture is ``mixture.wav`` (or ``mix.*``) when the reference folder has one,
else the sum of the reference stems.

>>> scores = evaluate_track({"vocals": ref}, {"vocals": est}, 44100)  # doctest: +SKIP
>>> scores["vocals"]["global_sdr"]                                    # doctest: +SKIP
9.98
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..errors import ExportError
from ..io.reading import is_audio_name, open_audio
from .bsseval import bss_eval

SDR_EPS = 1e-7  # MDX's delta: keeps SDR finite for perfect or silent estimates
BSS_EVAL_METRICS = ("sdr", "sir", "sar", "isr")
METRICS = BSS_EVAL_METRICS + ("global_sdr", "nsdr")
MIX_NAMES = ("mixture", "mix")

Scores = Dict[str, Dict[str, float]]  # stem -> metric -> dB


class EvaluationError(ValueError):
    """Reference and estimate folders that cannot be compared; the message says why."""


def global_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """MDX-challenge SDR over the whole signal, all channels, in dB."""
    ref = np.asarray(reference, np.float64)
    err = ref - np.asarray(estimate, np.float64)
    return 10 * math.log10((np.sum(ref**2) + SDR_EPS) / (np.sum(err**2) + SDR_EPS))


def museval_medians(
    references: List[np.ndarray], estimates: List[np.ndarray], sample_rate: int
) -> List[Dict[str, float]]:
    """BSS Eval v4 SDR, SIR, SAR, ISR of each (channels, n) estimate, evaluated together,
    as medians over 1-second frames (``museval.evaluate(..., win=rate, hop=rate)``)."""
    refs = np.stack([r.T for r in references]).astype(np.float64)
    ests = np.stack([e.T for e in estimates]).astype(np.float64)
    sdr, isr, sir, sar = bss_eval(refs, ests, window=int(sample_rate), hop=int(sample_rate))
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (silent) stems: NaN
        for k in range(len(references)):
            out.append(
                {
                    "sdr": float(np.nanmedian(sdr[k])),
                    "sir": float(np.nanmedian(sir[k])),
                    "sar": float(np.nanmedian(sar[k])),
                    "isr": float(np.nanmedian(isr[k])),
                }
            )
    return out


def evaluate_track(
    references: Mapping[str, np.ndarray],
    estimates: Mapping[str, np.ndarray],
    sample_rate: int,
    mixture: Optional[np.ndarray] = None,
    with_bss_eval: bool = True,
) -> Scores:
    """Metrics per stem for (channels, n) arrays; `mixture` defaults to the references' sum.
    `with_bss_eval=False` gives only the global SDR and NSDR (fast)."""
    stems = list(references)
    mix = sum(references.values()) if mixture is None else mixture
    scores: Scores = {}
    for s in stems:
        g = global_sdr(references[s], estimates[s])
        scores[s] = {"global_sdr": g, "nsdr": g - global_sdr(references[s], mix)}
    if with_bss_eval:
        # BSS Eval refuses an all-zero reference (any number of silent sources would fit it):
        # such a stem has no BSS Eval figures (NaN).
        audible = [s for s in stems if np.any(references[s])]
        for s in stems:
            scores[s].update({m: float("nan") for m in BSS_EVAL_METRICS})
        silent = [s for s in audible if not np.any(np.sum(estimates[s], axis=0))]
        if silent:
            raise EvaluationError(
                f"{silent[0]}: the estimate is silent but its reference is not; "
                "BSS Eval cannot score a silent estimate (museval refuses it "
                "too): use --global-only for global SDR and NSDR"
            )
        if audible:
            for s, m in zip(
                audible, museval_medians([references[s] for s in audible], [estimates[s] for s in audible], sample_rate)
            ):
                scores[s].update(m)
    return scores


# -- folders ---------------------------------------------------------------------------


def audio_files(folder: Path) -> Dict[str, Path]:
    return {
        p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and is_audio_name(p) and not p.name.startswith(".")
    }


def read(path: Path) -> Tuple[np.ndarray, int]:
    """A whole stem through the one reader (any channel count: scores need no separator)."""
    try:
        with open_audio(path, max_channels=None) as source:
            return source.read_all(), source.sample_rate
    except ExportError as e:
        raise EvaluationError(str(e)) from None


def track_pairs(reference_dir: Path, estimate_dir: Path) -> List[Tuple[str, Path, Path]]:
    """(track name, reference folder, estimate folder): the folders themselves when the
    reference holds stem files, else one pair per sub-folder of the reference."""
    for d, what in ((reference_dir, "reference"), (estimate_dir, "estimate")):
        if not d.is_dir():
            raise EvaluationError(f"{d}: no such {what} folder")
    if audio_files(reference_dir):
        return [(reference_dir.name, reference_dir, estimate_dir)]
    pairs = []
    for ref in sorted(p for p in reference_dir.iterdir() if p.is_dir() and audio_files(p)):
        est = estimate_dir / ref.name
        if not est.is_dir():
            raise EvaluationError(
                f"{est}: missing; the estimate folder needs a sub-folder per "
                f"track of {reference_dir}, with the same names"
            )
        pairs.append((ref.name, ref, est))
    if not pairs:
        raise EvaluationError(f"{reference_dir}: no stem files (<stem>.wav) and no track folders holding them")
    return pairs


def evaluate_folders(
    reference_dir: Path, estimate_dir: Path, with_bss_eval: bool = True, progress=None
) -> Dict[str, Scores]:
    """Scores per track of two folders laid out alike (see the module's docstring)."""
    results = {}
    for name, ref_dir, est_dir in track_pairs(Path(reference_dir), Path(estimate_dir)):
        ref_files = audio_files(ref_dir)
        mix_path = next((ref_files.pop(m) for m in MIX_NAMES if m in ref_files), None)
        est_files = audio_files(est_dir)
        missing = [s for s in ref_files if s not in est_files]
        if missing:
            raise EvaluationError(
                f"{est_dir}: no estimate for {', '.join(missing)} (expected {', '.join(s + '.wav' for s in missing)})"
            )
        references, estimates, rate = {}, {}, None
        for stem, path in ref_files.items():
            ref, ref_rate = read(path)
            est, est_rate = read(est_files[stem])
            if rate is not None and ref_rate != rate:
                raise EvaluationError(f"{path}: {ref_rate} Hz, but the track's other stems are {rate} Hz")
            rate = ref_rate
            if est_rate != ref_rate:
                raise EvaluationError(
                    f"{est_files[stem]}: {est_rate} Hz, its reference {ref_rate} Hz; "
                    "resample the estimate to the reference's rate"
                )
            if est.shape != ref.shape:
                raise EvaluationError(
                    f"{est_files[stem]}: {est.shape[0]} channel(s) x {est.shape[1]} "
                    f"samples, its reference {ref.shape[0]} x {ref.shape[1]}; an "
                    "estimate must be aligned with its reference and as long"
                )
            if not np.all(np.isfinite(est)):
                raise EvaluationError(f"{est_files[stem]}: contains NaN or infinite samples")
            references[stem], estimates[stem] = ref, est
        mixture = None
        if mix_path is not None:
            mixture, mix_rate = read(mix_path)
            if mixture.shape != next(iter(references.values())).shape or mix_rate != rate:
                raise EvaluationError(f"{mix_path}: not the same length, channels and rate as the stems")
        results[name] = evaluate_track(references, estimates, rate, mixture, with_bss_eval)
        if progress:
            progress(name, results[name])
    return results


def summary(results: Mapping[str, Scores]) -> Scores:
    """Per stem over tracks: the median of the BSS Eval metrics (SiSEC), the mean of the
    global ones (MDX); NaN where no track has a value."""
    stems = list(dict.fromkeys(s for scores in results.values() for s in scores))
    out: Scores = {}
    for s in stems:
        out[s] = {}
        for metric in METRICS:
            values = [
                t[s][metric] for t in results.values() if s in t and metric in t[s] and not math.isnan(t[s][metric])
            ]
            if values:
                stat = np.mean if metric in ("global_sdr", "nsdr") else np.median
                out[s][metric] = float(stat(values))
    return out


CONVENTIONS = {
    "sdr/sir/sar/isr": "BSS Eval v4 as museval, median over 1 s frames; summary: median over tracks",
    "global_sdr/nsdr": "whole track (MDX); summary: mean over tracks",
}


def report(results: Mapping[str, Scores]) -> dict:
    """The scores per track, their summary and the conventions they follow, as
    `stemforge evaluate --json` writes them (see `report_json`)."""
    return {"tracks": results, "summary": summary(results), "conventions": CONVENTIONS}


def report_json(results: Mapping[str, Scores]) -> str:
    """`report` as the JSON text `stemforge evaluate --json` writes: NaN (a silent stem's
    BSS Eval medians) is not JSON, so it is written as null."""
    return json.dumps(json.loads(json.dumps(report(results)), parse_constant=lambda _: None), indent=1)


def format_table(scores: Scores, title: str) -> str:
    lines = [title, f"  {'stem':<12}" + "".join(f"{m.upper():>11}" for m in METRICS)]
    for stem, row in scores.items():
        cells = "".join(f"{row[m]:11.2f}" if m in row and not math.isnan(row[m]) else f"{'-':>11}" for m in METRICS)
        lines.append(f"  {stem:<12}{cells}")
    return "\n".join(lines)
