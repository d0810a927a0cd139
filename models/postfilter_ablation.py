"""Does offline post-processing of a trained preset's stems gain anything?

    python -m models.postfilter_ablation [--preset studio] [--clips 24] [--weights DIR]

Scores, on training excerpts (never the held-out split), the preset as shipped beside a
multichannel Wiener filter (spatial covariance per stem over the whole excerpt, as in
norbert; 0 and 1 EM iterations), a channel-swap average and a half-hop shift average.
Every variant keeps the stems summing to the mix. Results: models/README.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import librosa
import numpy as np
import torch

from models.masknet import MaskNet
from models.train import STEMS, WEIGHTS, sdr, separate_whole, validation_set

N_FFT, HOP = 4096, 1024


def stft(x: np.ndarray) -> np.ndarray:
    """(..., n) -> (..., frames, bins)."""
    return np.swapaxes(librosa.stft(x, n_fft=N_FFT, hop_length=HOP), -1, -2)


def istft(spec: np.ndarray, n: int) -> np.ndarray:
    return librosa.istft(np.swapaxes(spec, -1, -2), n_fft=N_FFT, hop_length=HOP, length=n)


def wiener(stems: np.ndarray, mix: np.ndarray, iterations: int = 0, eps: float = 1e-10) -> np.ndarray:
    """Multichannel Wiener filter of (S, 2, n) stem estimates of the (2, n) `mix`."""
    x = stft(mix)
    y = stft(stems)
    for _ in range(iterations + 1):
        power = (np.abs(y) ** 2).mean(1)  # (S, T, F)
        spatial = np.einsum("sctf,sdtf->sfcd", y, y.conj()) / (power.sum(1)[:, :, None, None] + eps)
        cov = power[:, :, :, None, None] * spatial[:, None]  # (S, T, F, 2, 2)
        gain = cov @ np.linalg.inv(cov.sum(0) + eps * np.eye(2))[None]
        y = np.einsum("stfcd,dtf->sctf", gain, x)
    out = istft(y, mix.shape[-1])
    return (out + (mix - out.sum(0)) / len(out)).astype(np.float32)  # the eps residual, shared


def main(argv: list | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="studio")
    parser.add_argument("--clips", type=int, default=24, help="half rendered, half real training excerpts")
    parser.add_argument(
        "--weights", type=Path, default=WEIGHTS, help="folder with <preset>.pt and .json (default: the shipped weights)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    meta = json.loads((args.weights / f"{args.preset}.json").read_text())
    net = MaskNet(**meta["config"])
    net.load_state_dict(torch.load(args.weights / f"{args.preset}.pt", weights_only=True))
    net.eval()
    net.set_sharpness(meta.get("mask_sharpness", 1.0))

    @torch.no_grad()
    def separate(mix: np.ndarray, shift: int = 0) -> np.ndarray:
        y = separate_whole(net, torch.from_numpy(np.ascontiguousarray(np.pad(mix, ((0, 0), (shift, 0))))))
        return y[..., shift : shift + mix.shape[-1]]

    scores: dict = {}
    for name, stems, split_known in validation_set(args.clips // 2, args.clips // 2, split="train"):
        group = "real" if name.startswith("real:") else "rendered"
        mix = stems.sum(0)
        plain = separate(mix)
        swapped = separate(mix[::-1])[:, ::-1]
        shifted = separate(mix, net.hop // 2)
        variants = {
            "none": plain,
            "wiener, 0 iterations": wiener(plain, mix, 0),
            "wiener, 1 iteration": wiener(plain, mix, 1),
            "channel-swap average": (plain + swapped) / 2,
            "half-hop shift average": (plain + shifted) / 2,
        }
        for variant, est in variants.items():
            pairs = (
                [(s, est[i], stems[i]) for i, s in enumerate(STEMS)]
                if split_known
                else [("vocals", est[3], stems[3]), ("accompaniment", est[:3].sum(0), stems[2])]
            )
            for stem, e, ref in pairs:
                if np.abs(ref).max() > 1e-4:
                    scores.setdefault(variant, {}).setdefault(f"{group} {stem}", []).append(sdr(e, ref))
    for variant, table in scores.items():
        means = {k: round(float(np.mean(v)), 2) for k, v in table.items()}
        print(f"{variant:24s} mean {np.mean(list(means.values())):.3f} {json.dumps(means)}")


if __name__ == "__main__":
    main()
