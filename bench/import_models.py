"""Imported peers side by side with their own inference: HTDemucs and Open-Unmix.

    python -m bench.import_models [--seconds 60] [--rss-minutes 10] [--threads 2]

No weights can be downloaded here, so both peers are built at their released
configurations with fixed random weights (the cost of inference does not
depend on the weights): HTDemucs as `demucs.pretrained` ships it (4 sources,
7.8 s segment) and Open-Unmix as umxhq (hidden 512, n_fft 4096, hop 1024,
16 kHz bandwidth). Each is saved as its tool saves checkpoints and imported
with `stemforge import-model`. On the same audio and thread count, it prints:

- the peer's own inference time (Demucs: whole-track normalisation and
  apply_model(shifts=0, split=True, overlap=0.25); Open-Unmix: Separator with
  niter=0 on the whole excerpt) and stemforge's offline `separate`, and their
  ratio (the goal: stemforge's overhead at most 5%);
- stemforge's streaming time through process_block at 512-sample blocks (the
  audio, then silence until the delayed output is complete), and the latency
  it reports;
- what streaming without the whole track's statistics costs for Demucs (the
  running estimate of mean and std): the streamed stems against the offline
  ones, as a signal-to-difference ratio in dB;
- peak RSS (ru_maxrss of a fresh process) for a --rss-minutes file: the peer
  holding the whole track, and `stemforge separate` exporting it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import stemforge
from bench.signals import music
from stemforge.importers import import_model
from stemforge.importers.openunmix import openunmix_utils

RATE = 44100
STEMS = ["drums", "bass", "other", "vocals"]


def demucs_checkpoint(folder: Path) -> Path:
    """HTDemucs at the released htdemucs configuration, random weights, saved as Demucs does."""
    from fractions import Fraction

    from demucs.htdemucs import HTDemucs
    from demucs.states import get_state

    torch.manual_seed(0)
    model = HTDemucs(sources=STEMS, segment=Fraction(39, 5))  # the released 7.8 s segment
    args, kwargs = model._init_args_kwargs
    path = folder / "htdemucs-random.th"
    torch.save(
        {
            "klass": HTDemucs,
            "args": args,
            "kwargs": kwargs,
            "state": get_state(model, None, half=True),
            "training_args": {},
        },
        path,
    )
    return path


def umx_folder(folder: Path) -> Path:
    """Open-Unmix at the umxhq configuration, random weights, as its training writes a model."""
    openunmix_utils()
    from openunmix.model import OpenUnmix

    out = folder / "umxhq-random"
    out.mkdir()
    n_fft, n_hop, hidden = 4096, 1024, 512
    max_bin = int(np.ceil(16000 / (RATE / 2) * (n_fft // 2 + 1)))  # openunmix.utils.bandwidth_to_max_bin
    torch.manual_seed(0)
    for target in STEMS:
        model = OpenUnmix(nb_bins=n_fft // 2 + 1, nb_channels=2, hidden_size=hidden, max_bin=max_bin)
        torch.save(model.state_dict(), out / f"{target}.pth")
        (out / f"{target}.json").write_text(
            json.dumps(
                {"args": {"nfft": n_fft, "nhop": n_hop, "nb_channels": 2, "hidden_size": hidden, "bandwidth": 16000}}
            )
        )
    (out / "separator.json").write_text(
        json.dumps({"sample_rate": RATE, "nfft": n_fft, "nhop": n_hop, "nb_channels": 2})
    )
    return out


def load_demucs(checkpoint: Path):
    from demucs.states import load_model

    return load_model(str(checkpoint)).eval()


def run_demucs(model, x: np.ndarray) -> np.ndarray:
    """What demucs.api / demucs.separate compute, with shifts=0."""
    from demucs.apply import apply_model

    wav = torch.from_numpy(x)
    ref = wav.mean(0)
    mean, std = ref.mean(), ref.std() + 1e-8
    with torch.no_grad():
        out = apply_model(model, ((wav - mean) / std)[None], shifts=0, split=True, overlap=0.25)
    return (out * std + mean)[0].numpy()


def load_umx(folder: Path):
    separator = openunmix_utils().load_separator(str(folder), targets=STEMS, niter=0)
    separator.freeze()
    return separator


def run_umx(separator, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return separator(torch.from_numpy(x)[None])[0].numpy()


def timed(fn, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def difference_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((estimate - reference) ** 2)))


def rss_child(kind: str, source: str, audio: str, out: str) -> None:
    """In a fresh process: run one job on the file and print its peak RSS in MB."""
    from pedalboard.io import AudioFile

    if kind == "stemforge":
        from stemforge.cli import main

        main(["separate", audio, "-m", source, "-o", out, "-q", "--overwrite"])
    else:
        with AudioFile(audio) as f:
            x = f.read(f.frames)
        if kind == "demucs":
            run_demucs(load_demucs(Path(source)), x)
        else:
            run_umx(load_umx(Path(source)), x)
    from bench.peak_rss import peak_rss_mb

    print(peak_rss_mb())


def peak_rss(kind: str, source: Path, audio: Path, out: Path, threads: int) -> float:
    code = (
        f"import torch; torch.set_num_threads({threads}); "
        f"from bench import import_models as b; b.rss_child({kind!r}, {str(source)!r}, {str(audio)!r}, {str(out)!r})"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="audio for the timings")
    parser.add_argument("--rss-minutes", type=float, default=10.0, help="file length for peak RSS; 0 skips")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2, help="timings are the best of this many")
    parser.add_argument("--peers", default="demucs,openunmix", help="which peers (default: both)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = music(args.seconds, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        peers = {
            "HTDemucs": ("demucs", demucs_checkpoint, load_demucs, run_demucs),
            "Open-Unmix": ("openunmix", umx_folder, load_umx, run_umx),
        }
        if args.rss_minutes:
            long_file = tmp / "long.wav"
            from pedalboard.io import AudioFile

            with AudioFile(str(long_file), "w", RATE, 2, bit_depth=16) as f:
                for _ in range(int(args.rss_minutes)):
                    f.write(music(60.0, seed=2))
        print(f"{args.seconds:g} s of audio, {args.threads} threads, best of {args.runs}; torch {torch.__version__}")
        for label, (kind, build_checkpoint, load_peer, run_peer) in peers.items():
            if kind not in args.peers.split(","):
                continue
            checkpoint = build_checkpoint(tmp)
            model_path = tmp / f"{kind}.ts"
            import_model(kind, checkpoint, model_path)
            model = stemforge.load_model(model_path)
            peer_model = load_peer(checkpoint)
            peer = timed(lambda: run_peer(peer_model, x), args.runs)
            ours = timed(lambda: stemforge.separate(x, RATE, model, residual=None), args.runs)
            windowed = None
            if kind == "openunmix":
                # The peer on the windows stemforge runs (a whole-excerpt BLSTM cannot stream):
                # separates the engine's own overhead from the cost of overlapping windows.
                w, hop = model.info.window, model.info.hop
                starts = list(range(0, max(1, x.shape[1] - w + hop), hop))
                windowed = timed(
                    lambda: [run_peer(peer_model, np.ascontiguousarray(x[:, s : s + w])) for s in starts], args.runs
                )
            sep = stemforge.StemSeparator(model, stem="vocals", residual=None)
            offline = sep(x, RATE)

            sep.prepare(RATE, 2)
            latency = sep.latency_samples
            # The host goes on playing silence after the song until the delayed output is out.
            fed = np.pad(x, ((0, 0), (0, latency + 512)))

            def stream():
                sep.prepare(RATE, 2)
                return np.concatenate(
                    [sep.process_block(fed[:, i : i + 512], RATE) for i in range(0, fed.shape[1], 512)], axis=1
                )

            streaming = timed(stream, 1)
            streamed = stream()[:, latency : latency + x.shape[1]]
            print(f"\n{label} ({model.info.description})")
            print(f"  {'':<40} {'seconds':>8} {'RTF':>7} {'x peer':>7}")
            rows = [(f"peer's own inference ({kind})", peer)]
            if windowed is not None:
                rows.append((f"peer on {w / RATE:g} s windows, {model.info.overlap:g} overlap", windowed))
            rows += [("stemforge offline separate", ours), ("stemforge process_block 512", streaming)]
            for row, t in rows:
                print(f"  {row:<40} {t:8.2f} {t / args.seconds:7.3f} {t / peer:7.3f}")
            print(f"  stemforge overhead over the peer: {100 * (ours / peer - 1):+.1f}% (goal <= +5%)")
            if windowed is not None:
                print(
                    f"  of which overlapping windows: {100 * (windowed / peer - 1):+.1f}%; stemforge over "
                    f"the peer on the same windows: {100 * (ours / windowed - 1):+.1f}%"
                )
            print(f"  latency_samples: {latency} ({1000 * latency / RATE:.0f} ms)")
            if model.info.input_normalization == "track":
                print(
                    f"  streamed (running mean/std) vs offline (whole-track mean/std), vocals: "
                    f"{difference_db(streamed, offline):.1f} dB signal-to-difference"
                )
            if args.rss_minutes:
                mine = peak_rss("stemforge", model_path, long_file, tmp / "stems", args.threads)
                theirs = peak_rss(kind, checkpoint, long_file, tmp / "stems", args.threads)
                print(
                    f"  peak RSS, {args.rss_minutes:g}-min file: peer {theirs:.0f} MB, stemforge separate {mine:.0f} MB"
                )


if __name__ == "__main__":
    main()
