"""The shipped presets: MaskNet configurations and what their metadata says.

live    n_fft 1024, hop 256, no lookahead frames: the model's own latency is
        n_fft - hop = 768 samples, and process_block reports 768 + 255 = 1023
        samples at 44.1 kHz (23 ms); five dilated blocks see 0.36 s of past.
studio  n_fft 2048, hop 512, 24 lookahead frames: 0.31 s of lookahead and
        1.1 s of past context through ten dilated blocks; 4x the width.
Both take level-invariant features through the frequency-convolution front end
(front="conv"), which won the ablation in models/README.md.
"""

from __future__ import annotations

PRESETS = {
    "live": dict(n_fft=1024, hop=256, hidden=128, dilations=(1, 2, 4, 8, 16), lookahead_frames=0, front="conv"),
    "studio": dict(
        n_fft=2048, hop=512, hidden=256, dilations=(1, 2, 4, 8, 16, 1, 2, 4, 8, 16), lookahead_frames=24, front="conv"
    ),
}
DESCRIPTIONS = {
    "live": "stemforge live: low-latency streaming separator (23 ms at 44.1 kHz) for real-time use.",
    "studio": "stemforge studio: the default for file renders; 0.31 s lookahead, best quality.",
}
