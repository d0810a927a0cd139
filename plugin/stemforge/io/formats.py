"""The one table of audio formats: what stemforge reads, what it writes, at which bit depths.

Writing dispatches on the target's suffix (pedalboard picks the encoder from
it, as Demucs's ``save_audio`` does); this table says, per format, which bit
depths the encoder stores and which it uses when none is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..errors import ExportError

# Suffixes read as audio (find_inputs, evaluate's folders); .aif is AIFF's other spelling.
AUDIO_EXTENSIONS = (".wav", ".flac", ".aiff", ".aif", ".ogg", ".mp3")


@dataclass(frozen=True)
class OutputFormat:
    name: str
    bit_depths: Tuple[int, ...]  # empty: a lossy codec, which has no bit depth
    default_bit_depth: Optional[int]
    help: str
    refused: str = ""  # why stemforge does not write it, if it does not


# MP3 is refused as an output: LAME adds an encoder delay and padding (1105 samples
# at 44.1 kHz once decoded) that decoders without gapless support keep, so stems
# would not line up with the original, and it takes only 32, 44.1 and 48 kHz.
MP3_REFUSED = (
    "mp3 output is refused: MP3 adds about 1105 samples of encoder delay and padding "
    "that most decoders keep, so the stems would not line up with the original "
    "(and it stores only 32, 44.1 and 48 kHz); use --format flac (lossless, smaller "
    "than wav) or ogg (lossy, sample-aligned)"
)

FORMATS: Dict[str, OutputFormat] = {
    f.name: f
    for f in (
        OutputFormat("wav", (16, 24, 32), 32, "WAV, 16/24-bit integer or 32-bit float (default 32)"),
        OutputFormat("flac", (16, 24), 24, "FLAC, lossless, 16 or 24 bits (default 24)"),
        # AIFF here stores integers only: 32 would mean float, which pedalboard's AIFF writer lacks.
        OutputFormat("aiff", (16, 24), 24, "AIFF, 16 or 24 bits (default 24)"),
        OutputFormat("ogg", (), None, "Ogg Vorbis, lossy (no bit depth)"),
        OutputFormat("mp3", (), None, "refused: see docs/user-guide.md", refused=MP3_REFUSED),
    )
}
BIT_DEPTHS = {name: f.bit_depths for name, f in FORMATS.items()}


def check_format(fmt: str, bit_depth: Optional[int]) -> Optional[int]:
    """The bit depth to write `fmt` with (its default when `bit_depth` is None, None for
    lossy formats); ExportError, saying what to choose, for anything it cannot write."""
    if fmt not in FORMATS:
        raise ExportError(
            f"unknown format {fmt!r}; choose one of {', '.join(n for n, f in FORMATS.items() if not f.refused)}"
        )
    spec = FORMATS[fmt]
    if spec.refused:
        raise ExportError(spec.refused)
    if bit_depth is None:
        return spec.default_bit_depth
    if isinstance(bit_depth, bool) or not isinstance(bit_depth, int):
        raise ExportError(f"bit depth must be a whole number such as 24, got {bit_depth!r}")
    if not spec.bit_depths:
        raise ExportError(f"{fmt} is lossy and has no bit depth; leave the bit depth out, or choose wav, flac or aiff")
    if bit_depth not in spec.bit_depths:
        raise ExportError(f"{fmt} takes bit depths {', '.join(map(str, spec.bit_depths))}, not {bit_depth}")
    return bit_depth


def format_help() -> str:
    return "; ".join(f"{n}: {f.help}" for n, f in FORMATS.items())
