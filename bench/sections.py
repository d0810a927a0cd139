"""How well `stemforge sections` finds songs in long singing streams.

    python -m bench.sections [--streams 4] [--minutes 25] [--model live] [--seed 100]

Renders --streams recordings of about --minutes each with known truth
(bench/streams.py: pop, rock and ballad songs of 2 to 4.5 minutes, some
sung back to back with a short pause, talk alone or over background music,
silences; where Debian's asterisk-core-sounds-en-wav is installed, some of
the talk is real recorded speech instead of the synthetic voice). Each is
written to FLAC and run through the `stemforge sections` command in a
fresh process. Per stream and overall it prints:

- recall: true songs matched by a found song (overlap over union >= 0.5);
- false songs: found songs that match none;
- boundary error: |found - true| of each matched song's start and end, in s
  (median, 90th percentile, max, and the share within 2 s);
- the command's real-time factor and peak RSS (constant in the length).

A benchmark, not a test: it prints figures and always exits 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.streams import RATE, Part, render_stream

SPEECH_DIR = Path("/usr/share/asterisk/sounds/en")


def real_speech(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Recorded prompts strung together with short pauses, at 44.1 kHz (empty if absent)."""
    files = sorted(SPEECH_DIR.glob("*.wav")) if SPEECH_DIR.is_dir() else []
    if not files:
        return np.zeros(0)
    import soxr
    from pedalboard.io import AudioFile

    pieces, n = [], int(seconds * RATE)
    while sum(len(p) for p in pieces) < n:
        with AudioFile(str(files[rng.integers(len(files))])) as f:
            x = f.read(f.frames).mean(axis=0)
            rate = f.samplerate
        pieces += [soxr.resample(x, rate, RATE), np.zeros(int(rng.uniform(0.2, 0.8) * RATE))]
    y = np.concatenate(pieces)[:n]
    return y / (np.abs(y).max() + 1e-9)


def random_parts(minutes: float, rng: np.random.Generator) -> list:
    parts, total = [Part("talk", rng.uniform(20, 90))], 0.0
    while total < minutes * 60:
        style = rng.choice(["pop", "rock", "ballad"], p=[0.45, 0.3, 0.25])
        parts.append(Part("song", float(rng.uniform(120, 270)), str(style)))
        if rng.random() < 0.25:  # another song right after, a short pause between
            parts += [Part("silence", float(rng.uniform(5, 8))), Part("song", float(rng.uniform(120, 270)), "pop")]
        kind = rng.choice(["talk", "bgm-talk", "silence-talk"])
        if kind == "silence-talk":
            parts += [Part("silence", float(rng.uniform(5, 20))), Part("talk", float(rng.uniform(20, 120)))]
        else:
            parts.append(Part(str(kind), float(rng.uniform(20, 150))))
        total = sum(p.seconds for p in parts)
    return parts


def render(minutes: float, seed: int, path: Path) -> list:
    rng = np.random.default_rng(seed)
    parts = random_parts(minutes, rng)
    audio, truth = render_stream(parts, seed=seed)
    # Replace some synthetic talk with recorded speech, where it is installed.
    t = 0
    for part in parts:
        n = int(part.seconds * RATE)
        if part.kind == "talk" and rng.random() < 0.5:
            speech = real_speech(part.seconds, rng)
            if len(speech):
                audio[:, t : t + n] = 0.25 * speech[None, :n]
        t += n
    from pedalboard.io import AudioFile

    with AudioFile(str(path), "w", RATE, 2, bit_depth=16) as f:
        f.write(audio)
    return truth


def iou(a, b) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def score(found: list, truth: list) -> dict:
    matched, errors, used = 0, [], set()
    for t in truth:
        best = max(range(len(found)), key=lambda i: iou(found[i], t), default=None)
        if best is not None and iou(found[best], t) >= 0.5 and best not in used:
            used.add(best)
            matched += 1
            errors += [abs(found[best][0] - t[0]), abs(found[best][1] - t[1])]
    return {"songs": len(truth), "found": matched, "false": len(found) - len(used), "errors": errors}


def run_sections(path: Path, out: Path, model: str) -> tuple:
    code = (
        "import sys; from bench.peak_rss import peak_rss_mb; "
        "from stemforge.cli import main; "
        f"rc = main(['sections', {str(path)!r}, '-o', {str(out)!r}, '-m', {model!r}, '-q']); "
        "print('RSS', peak_rss_mb()); sys.exit(rc)"
    )
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(done.stderr)
    rss = float(done.stdout.split("RSS")[-1])
    with open(out / f"{path.stem}.songs.csv") as f:
        found = [(float(r["start_s"]), float(r["end_s"])) for r in csv.DictReader(f)]
    return found, seconds, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--model", default="live")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    totals = {"songs": 0, "found": 0, "false": 0, "errors": []}
    rows = []
    print(
        f"{'stream':<10}{'minutes':>8}{'songs':>7}{'found':>7}{'false':>7}{'median s':>10}"
        f"{'p90 s':>8}{'max s':>8}{'<=2 s':>8}{'RTF':>8}{'RSS MB':>8}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.streams):
            path = Path(tmp) / f"stream{k}.flac"
            truth = render(args.minutes, args.seed + k, path)
            found, seconds, rss = run_sections(path, Path(tmp) / "out", args.model)
            from pedalboard.io import AudioFile

            with AudioFile(str(path)) as f:
                duration = f.frames / f.samplerate
            s = score(found, truth)
            e = np.array(s["errors"]) if s["errors"] else np.array([np.nan])
            print(
                f"{path.stem:<10}{duration / 60:8.1f}{s['songs']:7d}{s['found']:7d}{s['false']:7d}"
                f"{np.median(e):10.1f}{np.percentile(e, 90):8.1f}{np.max(e):8.1f}"
                f"{np.mean(e <= 2):8.0%}{seconds / duration:8.3f}{rss:8.0f}",
                flush=True,
            )
            rows.append(
                dict(
                    stream=path.stem,
                    minutes=duration / 60,
                    rtf=seconds / duration,
                    rss_mb=rss,
                    truth=truth,
                    songs_found=found,
                    matched=s["found"],
                    false=s["false"],
                    errors=s["errors"],
                )
            )
            for key in ("songs", "found", "false"):
                totals[key] += s[key]
            totals["errors"] += s["errors"]
    e = np.array(totals["errors"])
    print(
        f"\nall: recall {totals['found']}/{totals['songs']} = {totals['found'] / totals['songs']:.0%}, "
        f"{totals['false']} false song(s); boundary error median {np.median(e):.1f} s, "
        f"90th percentile {np.percentile(e, 90):.1f} s, max {e.max():.1f} s, "
        f"{np.mean(e <= 2):.0%} within 2 s"
    )
    if args.json:
        args.json.write_text(json.dumps({"streams": rows}, indent=1))


if __name__ == "__main__":
    main()
