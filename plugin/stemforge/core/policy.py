"""Which resampling each use takes, chosen in one place (torch-free).

Away from the model's rate, audio is resampled host -> model -> host with one of the
contract's named policies (contract.json, "resampling"; the recipes in `resample.RESAMPLING`).
Two uses, two policies:

- REALTIME ("low-delay"): audio processed block by block for a host or a device, where
  the resamplers' hold-back is latency: `StemSeparator` (all three call styles, so that
  they stay one result; `render` plans and `stemforge live` use it), `latency_of` and
  `realtime_headroom`, and the VST3 plugin, which reads the same contract entry.
- OFFLINE ("hq"): whole files, where latency costs nothing and soxr HQ keeps the top
  octave: `separate`, `StemSplitter`, and through it `stemforge separate` / `export`
  and `sections`.

So at 48 kHz `separate(x)["vocals"]` differs from `StemSeparator(stem="vocals")(x)` by
what the two policies' resamplers do differently (docs/performance.md, "Resampling in real time");
`separate(x, rate, resampling=REALTIME)` gives the real-time samples. The lower-level functions
(`pipeline.host_latency`, `resampler_holdbacks`, `resampler_recipes`) take the policy
from their caller and have no default of their own.
"""

from __future__ import annotations

from typing import Dict

from .contract import RESAMPLING

REALTIME: str = RESAMPLING["realtime_policy"]
OFFLINE: str = RESAMPLING["offline_policy"]
USES: Dict[str, str] = {"realtime": REALTIME, "offline": OFFLINE}


def policy_for(use: str) -> str:
    """The resampling policy (a `resample.RESAMPLING` name) of `use`: "realtime" or "offline"."""
    if use not in USES:
        raise ValueError(f"use must be one of {', '.join(map(repr, USES))}, got {use!r}")
    return USES[use]
