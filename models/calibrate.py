"""Calibrate a trained preset's masks on the real-band validation songs.

    python build.py calibrate --preset live|studio [--threads T]

`tune` chooses one mask exponent on training clips. On real band music the trained masks
are overconfident: softer masks for the band, with the vocals kept sharper, gain several dB
on the validation songs (models/README.md, "Calibration"). This chooses two exponents, one
shared by drums, bass and other and one for the vocals (softmax(a_s * logits) still sums to
one over the stems, so the stems still sum to the mix), by the 4-stem mean on the real-band
validation songs (models/band_validation.py: they choose, they are never trained on), among
the pairs that keep what the product already does on real held-out recordings that are not
band songs: the karaoke vocals and accompaniment no more than TOLERANCE_DB below the tuned
single exponent's, and a solo voice at least SOLO_SHARE % in the vocals stem.
"""

from __future__ import annotations

import argparse
import json
from typing import Dict, List, Tuple

import numpy as np
import torch

from models.masknet import Cascade, MaskNet
from models.presets import PRESETS, shipped_network
from models.train import WEIGHTS, band_examples, separate_whole, validate, validation_set

BAND_GRID = (0.2, 0.3, 0.4, 0.6)
VOCALS_GRID = (0.6, 1.0, 1.6)
TOLERANCE_DB = 0.5
SOLO_SHARE = 95.0
VOCALS = 3


def solo_share(net: "MaskNet | Cascade", voices: List[np.ndarray]) -> float:
    """Mean % of a solo voice's energy that lands in the vocals stem."""
    shares = []
    with torch.no_grad():
        for voice in voices:
            y = separate_whole(net, torch.from_numpy(voice)).astype(np.float64)
            shares.append(100 * float(np.sum(y[VOCALS] ** 2)) / max(float(np.sum(y**2)), 1e-20))
    return float(np.mean(shares))


def measure(net: "MaskNet | Cascade", band: list, real: list, voices: List[np.ndarray]) -> Dict[str, float]:
    scores = validate(net, band + real)
    out = {f"band {k}": v for k, v in scores["band"].items()}
    out["band mean"] = round(float(np.mean(list(scores["band"].values()))), 3)
    out["real vocals"] = scores["real"]["vocals"]
    out["real accompaniment"] = scores["real"]["accompaniment"]
    out["solo voice %"] = round(solo_share(net, voices), 2)
    return out


def calibrate(preset: str, threads: int) -> None:
    torch.set_num_threads(threads)
    meta_path = WEIGHTS / f"{preset}.json"
    meta = json.loads(meta_path.read_text())
    tuned = meta.get("mask_sharpness", 1.0)
    if not isinstance(tuned, (int, float)):
        raise SystemExit(f"{meta_path} is calibrated already ({tuned}): run build.py tune first")
    band = band_examples()
    if not band:
        raise SystemExit("calibration needs the real-band validation songs (see the note above)")
    real = validation_set(0, 24, split="test", band=False)
    voices = [stems[VOCALS] for _, stems, _ in real if float(np.sqrt(np.mean(stems[VOCALS] ** 2))) > 3e-3]
    net = shipped_network(preset, meta, WEIGHTS / f"{preset}.pt")  # the tuned exponent, every pass
    base = measure(net, band, real, voices)
    print(f"{preset} tuned {tuned}: {json.dumps(base)}", flush=True)
    table: Dict[str, dict] = {f"{tuned}": base}
    best: Tuple[float, List[float]] = (base["band mean"], [float(tuned)] * 4)
    for a in BAND_GRID:
        for v in VOCALS_GRID:
            exponents = [a, a, a, v]
            net.set_sharpness(exponents)
            row = measure(net, band, real, voices)
            row["keeps"] = (
                row["real vocals"] >= base["real vocals"] - TOLERANCE_DB
                and row["real accompaniment"] >= base["real accompaniment"] - TOLERANCE_DB
                and row["solo voice %"] >= SOLO_SHARE
            )
            table[f"{a},{v}"] = row
            print(f"{preset} band {a} vocals {v}: {json.dumps(row)}", flush=True)
            if row["keeps"] and row["band mean"] > best[0]:
                best = (row["band mean"], exponents)
    meta.update(
        mask_sharpness=best[1] if best[1] != [float(tuned)] * 4 else tuned,
        mask_sharpness_calibration={
            "tuned": tuned,
            "chosen": best[1],
            "by": "4-stem mean on the real-band validation songs",
            "keeping": f"real held-out vocals and accompaniment within {TOLERANCE_DB} dB of the tuned exponent's, "
            f"solo voice >= {SOLO_SHARE} % in vocals ({len(real)} excerpts, {len(voices)} voices)",
            "sdr": table,
        },
    )
    meta_path.write_text(json.dumps(meta, indent=1))
    print(f"{preset}: mask sharpness {meta['mask_sharpness']} written to {meta_path}; run `python build.py {preset}`")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="build.py calibrate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    calibrate(args.preset, args.threads)


if __name__ == "__main__":
    main()
