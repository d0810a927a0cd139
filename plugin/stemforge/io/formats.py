"""The audio formats stemforge writes, with the bit depths each can store."""
from __future__ import annotations

from typing import Optional

from ..errors import ExportError

BIT_DEPTHS = {"wav": (16, 24, 32), "flac": (16, 24), "aiff": (16, 24, 32), "ogg": (), "mp3": ()}


def check_format(fmt: str, bit_depth: Optional[int]) -> None:
    if fmt not in BIT_DEPTHS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(BIT_DEPTHS)}")
    if bit_depth is not None and BIT_DEPTHS[fmt] and bit_depth not in BIT_DEPTHS[fmt]:
        raise ExportError(f"{fmt} takes bit depths {', '.join(map(str, BIT_DEPTHS[fmt]))}, "
                          f"not {bit_depth}")
