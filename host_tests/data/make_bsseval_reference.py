"""Compute museval's BSS Eval v4 figures for the cases of host_tests/bsseval_cases.py and
write them to bsseval_museval.json, beside this script; host_tests/test_bsseval.py checks
stemforge's own implementation against them.

Values above 200 dB (an estimate equal to its reference) and NaN (a silent frame) are
kept as museval gives them (Infinity, null). It needs museval (pip install museval) and,
because museval's package imports musdb and stempeg, ffmpeg and ffprobe on PATH. Run from
the project's root:

    python -m host_tests.data.make_bsseval_reference
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
from pathlib import Path

import numpy as np

from host_tests.bsseval_cases import CASES, RATE, as_read, checksum

HERE = Path(__file__).resolve().parent


def main() -> None:
    import museval

    out = {
        "museval": importlib.metadata.version("museval"),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "call": f"museval.evaluate(references, estimates, win={RATE}, hop={RATE})",
        "cases": {},
    }
    for name, make in CASES.items():
        refs, ests = make()
        r, e = as_read(refs, ests)
        sdr, isr, sir, sar = museval.evaluate(r, e, win=RATE, hop=RATE)
        # How far museval's own figures move when the references move by 1e-12 (relative):
        # a case is only worth comparing on if this is far below the 0.01 dB asked for.
        jitter = 1 + 1e-12 * np.random.default_rng(0).standard_normal(r.shape)
        again = museval.evaluate(r * jitter, e, win=RATE, hop=RATE)
        spread = max(
            float(np.max(np.abs(a - b)[np.isfinite(a) & (a < 200)], initial=0.0))
            for a, b in zip((sdr, isr, sir, sar), again)
        )
        out["cases"][name] = {
            "stems": list(refs),
            "shape": list(r.shape),
            "checksum": {"references": checksum(r), "estimates": checksum(e)},
            "museval_spread_under_1e-12_jitter_db": spread,
            # per stem, per 1 s frame; null where museval gives NaN (a silent frame)
            **{
                m: [[None if np.isnan(v) else float(v) for v in row] for row in x]
                for m, x in (("sdr", sdr), ("isr", isr), ("sir", sir), ("sar", sar))
            },
        }
        print(
            f"{name}: {r.shape[0]} stems x {sdr.shape[1]} frames; museval's own spread "
            f"under 1e-12 jitter {spread:.1e} dB"
        )
    (HERE / "bsseval_museval.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
