"""Scripted renders: files through a chain of processors to new files.

Python::

    from pedalboard import HighpassFilter, Compressor
    stemforge.render("song.wav", [HighpassFilter(100), StemSeparator(stem="vocals"),
                                  Compressor(threshold_db=-18)], "out/", filename="{track}-acapella.{ext}")

or a plan, ``stemforge render PLAN.toml``::

    inputs = ["songs/*.wav"]
    [[chain]]
    plugin = "HighpassFilter"            # any pedalboard plugin, by class name
    cutoff_frequency_hz = 100
    [[chain]]
    plugin = "stemforge"                 # a StemSeparator: preset/model, stem or gains
    preset = "studio"
    stem = "vocals"
    [[chain]]
    plugin = "/path/to/Effect.vst3"      # VST3 or AU plugins by path
    parameters = { mix = 0.5 }
    [output]
    folder = "rendered"
    format = "wav"                       # wav flac aiff ogg mp3
    bit_depth = 24
    sample_rate = 48000                  # resample the result (default: the input's rate)
    filename = "{track}-acapella.{ext}"

A plan is checked whole before any audio is written: an unknown plugin, a bad
parameter or a missing input is an error that names the plan's line.
"""
from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Union

import numpy as np
import pedalboard
from pedalboard.io import AudioFile

from ..core.chain import Chain
from ..errors import ExportError
from ..io.formats import check_format
from ..io.reading import READ_BLOCK, find_inputs
from ..io.writing import StemWriter, check_template, target_path
from ..core.processor import StemSeparator
from ..core.resample import StreamResampler, check_rate

STEMFORGE_KEYS = {"plugin", "preset", "model", "stem", "gains", "gains_db", "residual", "threads"}


def render(inputs: Union[str, Path, Sequence[Union[str, Path]]], chain, output_dir: Union[str, Path],
           *, format: str = "wav", bit_depth: Optional[int] = 24, sample_rate: Optional[int] = None,
           filename: str = "{track}.{ext}", recursive: bool = False, overwrite: bool = False) -> List[Path]:
    """Stream every input through `chain` (a Chain, or a list of plugins and stemforge
    processors) into `output_dir`; returns the files written. Existing outputs are kept
    unless `overwrite`."""
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    files = find_inputs([str(i) for i in items], recursive)
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise ExportError(f"no such input file: {missing[0]}")
    check_format(format, bit_depth)
    check_template(filename, need_stem=False)
    if sample_rate is not None:
        check_rate(sample_rate)
    chain = chain if isinstance(chain, Chain) else Chain(chain)
    written = []
    for index, path in enumerate(files):
        target = target_path(Path(output_dir), filename, track=path.stem, stem="", ext=format,
                             model="", preset="", index=index + 1)
        if target.exists() and not overwrite:
            continue
        written.append(_render_file(path, chain, target, format, bit_depth, sample_rate))
    return written


def _render_file(path: Path, chain: Chain, target: Path, fmt: str, bit_depth: Optional[int],
                 sample_rate: Optional[int]) -> Path:
    with AudioFile(str(path)) as f:
        rate, channels, frames = int(f.samplerate), f.num_channels, f.frames
        out_rate = sample_rate or rate
        resampler = StreamResampler(rate, out_rate, channels)
        writer = StemWriter({"out": target}, out_rate, channels, fmt, bit_depth)
        chain.prepare(rate, channels)
        expected = round(frames * out_rate / rate)
        done = 0
        try:
            def emit(y: np.ndarray, last: bool = False) -> None:
                nonlocal done
                y = resampler.push(y, last=last) if not resampler.identity else y
                y = y[:, :max(0, expected - done)]
                done += y.shape[1]
                writer.write({"out": y})
            while f.tell() < frames:
                emit(chain.process(f.read(READ_BLOCK), rate, reset=False))
            emit(chain.flush(), last=True)
            if done < expected:  # the resampler's last fraction of a sample
                writer.write({"out": np.zeros((channels, expected - done), np.float32)})
        except BaseException:
            writer.abort()
            raise
    return writer.commit()[0]


# -- plans ---------------------------------------------------------------------------

class PlanError(ValueError):
    """A plan that cannot run; the message names the file and line."""


CHAIN_HEADER, INPUTS_KEY, OUTPUT_HEADER = r"^\s*\[\[chain\]\]", r"^\s*inputs\b", r"^\s*\[output\]"


def _line_of(text: str, pattern: str, occurrence: int = 0) -> int:
    """The line (1-based) of the `occurrence`-th match of `pattern`; tomllib keeps no positions."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if re.search(pattern, line)]
    return hits[min(occurrence, len(hits) - 1)] if hits else 1


def _native_plugin(entry: dict, where: str, text: str = "", path: Path = Path("plan")):
    name = entry["plugin"]
    if "/" in name or name.endswith((".vst3", ".component")):
        if not Path(name).exists():
            raise PlanError(f"{where}: no plugin file {name!r}")
        return pedalboard.load_plugin(name, parameter_values=entry.get("parameters", {}))
    cls = getattr(pedalboard, name, None)
    if not (isinstance(cls, type) and issubclass(cls, pedalboard.Plugin)) or name in (
            "Plugin", "Pedalboard", "Chain", "Mix", "ExternalPlugin", "VST3Plugin", "AudioUnitPlugin"):
        known = [n for n in dir(pedalboard) if isinstance(getattr(pedalboard, n), type)
                 and issubclass(getattr(pedalboard, n), pedalboard.Plugin)]
        hint = difflib.get_close_matches(name, known + ["stemforge"], n=1)
        raise PlanError(f"{where}: unknown plugin {name!r}" + (f" (did you mean {hint[0]}?)" if hint else ""))
    params = {k: v for k, v in entry.items() if k != "plugin"}
    accepted = sorted(k for k in dir(cls) if isinstance(getattr(cls, k, None), property)
                      and not k.startswith("_") and k not in ("is_effect", "is_instrument"))
    unknown = [k for k in params if k not in accepted]
    if unknown:
        line = _line_of(text, r"^\s*" + re.escape(unknown[0]) + r"\s*=")
        raise PlanError(f"{path}:{line}: {name} has no parameter {unknown[0]!r}; it takes "
                        f"{', '.join(accepted)}")
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise PlanError(f"{where}: bad value for {name}: {str(e).splitlines()[0]}") from None


def _stemforge_processor(entry: dict, where: str) -> StemSeparator:
    unknown = set(entry) - STEMFORGE_KEYS
    if unknown:
        raise PlanError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} for stemforge; "
                        f"use {', '.join(sorted(STEMFORGE_KEYS - {'plugin'}))}")
    gains = entry.get("gains")
    if "gains_db" in entry:
        gains = {k: 10 ** (float(v) / 20) for k, v in entry["gains_db"].items()}
    try:
        return StemSeparator(entry.get("model") or entry.get("preset"), stem=entry.get("stem"),
                             gains=gains, residual=entry.get("residual", "auto"),
                             threads=entry.get("threads"))
    except ValueError as e:  # includes ModelError
        raise PlanError(f"{where}: {e}") from None


def load_plan(path: Union[str, Path]) -> dict:
    """Read and check a plan; returns {"inputs", "chain", "output"} ready for `render`."""
    path = Path(path)
    text = path.read_text()
    try:
        plan = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PlanError(f"{path}: {e}") from None
    unknown = set(plan) - {"inputs", "recursive", "chain", "output"}
    if unknown:
        key = sorted(unknown)[0]
        line = _line_of(text, r"^\s*\[?" + re.escape(key))
        raise PlanError(f"{path}:{line}: unknown key {key!r}; a plan has inputs, chain and output")
    inputs = plan.get("inputs")
    if not inputs:
        raise PlanError(f"{path}: the plan names no inputs (inputs = [\"song.wav\"])")
    inputs = [inputs] if isinstance(inputs, str) else inputs
    base = path.parent
    resolved = [str(Path(i) if Path(i).is_absolute() else base / i) for i in inputs]
    files = find_inputs(resolved, plan.get("recursive", False))
    where = f"{path}:{_line_of(text, INPUTS_KEY)}"
    for f in files:
        if not f.is_file():
            raise PlanError(f"{where}: no such input file {f}")
    if not files:
        raise PlanError(f"{where}: no audio files match {inputs}")
    chain = []
    for k, entry in enumerate(plan.get("chain", [])):
        where = f"{path}:{_line_of(text, CHAIN_HEADER, k)}"
        if "plugin" not in entry:
            raise PlanError(f"{where}: a [[chain]] entry needs plugin = \"...\"")
        chain.append(_stemforge_processor(entry, where) if entry["plugin"] == "stemforge"
                     else _native_plugin(entry, where, text, path))
    out = dict(plan.get("output", {}))
    where = f"{path}:{_line_of(text, OUTPUT_HEADER)}"
    allowed = {"folder", "format", "bit_depth", "sample_rate", "filename", "overwrite"}
    if set(out) - allowed:
        raise PlanError(f"{where}: unknown output key(s) {', '.join(sorted(set(out) - allowed))}")
    options = dict(format=out.get("format", "wav"), bit_depth=out.get("bit_depth", 24),
                   sample_rate=out.get("sample_rate"), filename=out.get("filename", "{track}.{ext}"),
                   overwrite=out.get("overwrite", False))
    try:
        check_format(options["format"], options["bit_depth"])
        if options["sample_rate"] is not None:
            check_rate(options["sample_rate"])
    except ValueError as e:
        raise PlanError(f"{where}: {e}") from None
    folder = Path(out.get("folder", "rendered"))
    return {"inputs": files, "chain": chain, "output_dir": folder if folder.is_absolute() else base / folder,
            **options}


def run_plan(path: Union[str, Path]) -> List[Path]:
    plan = load_plan(path)
    return render(plan.pop("inputs"), plan.pop("chain"), plan.pop("output_dir"), **plan)
