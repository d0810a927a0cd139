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
    format = "wav"                       # wav flac aiff ogg
    bit_depth = 24                       # default: the format's (see io.formats)
    sample_rate = 48000                  # resample the result (default: the input's rate)
    filename = "{track}-acapella.{ext}"

A plan is checked whole before any audio is written: an unknown plugin, a bad
parameter, a value of the wrong type, an unreadable input or an output that would
replace an input is an error that names the plan's line.
"""

from __future__ import annotations

import difflib
import re
import threading
import time
import warnings
from pathlib import Path
from typing import Any, List, Optional, Sequence, Set, Tuple, Union

import numpy as np
import pedalboard
import tomllib

from ..core.chain import Chain
from ..core.lookup import PRESETS
from ..core.processor import StemSeparator
from ..core.resample import StreamResampler, check_rate
from ..core.stats import RunningStats
from ..errors import ExportError
from ..io.formats import check_format
from ..io.reading import Source, find_inputs, open_audio
from ..io.writing import StemWriter, check_output_folder, check_targets, check_template, target_path, template_outputs
from .batch import BatchReport, FileResult, Reporter, run_files

STEMFORGE_KEYS = {"plugin", "preset", "model", "stem", "gains", "gains_db", "residual", "threads"}
DEFAULT_RENDER_TEMPLATE = "{track}.{ext}"
# one file per input: no {stem}, {model} or {preset} to fill
RENDER_FIELDS = {"track", "ext", "index"}
PathLike = Union[str, Path]


def render(
    inputs: Union[PathLike, Sequence[PathLike]],
    chain,
    output_dir: PathLike,
    *,
    format: str = "wav",
    bit_depth: Optional[int] = None,
    sample_rate: Optional[int] = None,
    filename: str = DEFAULT_RENDER_TEMPLATE,
    recursive: bool = False,
    overwrite: bool = False,
) -> List[Path]:
    """Stream every input through `chain` (a Chain, or a list of plugins and stemforge
    processors) into `output_dir`; returns the files written. Existing outputs are kept
    unless `overwrite`; an output is never one of the inputs. Raises on the first
    input that cannot be rendered (`render_batch` reports and goes on)."""
    report = render_batch(
        inputs,
        chain,
        output_dir,
        format=format,
        bit_depth=bit_depth,
        sample_rate=sample_rate,
        filename=filename,
        recursive=recursive,
        overwrite=overwrite,
    )
    if report.failed:
        raise ExportError(f"{report.failed[0].input}: {report.failed[0].message}")
    for r in report.files:
        for text in r.warnings:
            warnings.warn(f"{r.input}: {text}", stacklevel=2)
    return report.written


def render_batch(
    inputs: Union[PathLike, Sequence[PathLike]],
    chain,
    output_dir: PathLike,
    *,
    format: str = "wav",
    bit_depth: Optional[int] = None,
    sample_rate: Optional[int] = None,
    filename: str = DEFAULT_RENDER_TEMPLATE,
    recursive: bool = False,
    overwrite: bool = False,
    reporter: Optional[Reporter] = None,
    stop: Optional[threading.Event] = None,
) -> BatchReport:
    """`render` with a report per file (done, skipped, failed) and progress."""
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    out = Path(output_dir)
    bit_depth = check_format(format, bit_depth)
    check_template(filename, need_stem=False, fmt=format, known=RENDER_FIELDS)
    if sample_rate is not None:
        check_rate(sample_rate)
    check_output_folder(out)
    files = find_inputs(
        [str(i) for i in items],
        recursive,
        exclude=[out],
        outputs_of=lambda found: _earlier_outputs(found, out, filename, format),
    )
    if not files:
        raise ExportError("no audio files found in " + " ".join(map(str, items)))
    chain = chain if isinstance(chain, Chain) else Chain(chain)
    targets = {
        path: target_path(out, filename, track=path.stem, stem="", ext=format, model="", preset="", index=index + 1)
        for index, path in enumerate(files)
    }
    check_targets({p: [t] for p, t in targets.items()}, files)
    reporter = reporter or Reporter()

    def work(index: int, path: Path) -> FileResult:
        if targets[path].exists() and not overwrite:
            return FileResult(path, "skipped", [targets[path]], "exists, skipped (overwrite to redo)")
        with open_audio(path) as source:
            start = time.perf_counter()
            written, clipping = _render_file(source, chain, targets[path], bit_depth, sample_rate, reporter, stop)
            return FileResult(
                path,
                "done",
                [written],
                seconds=time.perf_counter() - start,
                audio_seconds=source.seconds,
                warnings=[clipping] if clipping else [],
            )

    # a chain is one stream at a time: files one after another
    return run_files(files, work, 1, stop, reporter)


def _earlier_outputs(found: List[Path], out: Path, filename: str, format: str) -> Set[Path]:
    """What an earlier render wrote into an output folder that is also an input folder."""
    return template_outputs(found, out, filename, [""], ext=format, model="", preset="")


def _stage_track_stats(source: Source, chain: Chain, stop: Optional[threading.Event]) -> list:
    """Set the exact whole-input statistics on each separator whose model normalises by
    them (Demucs), as `separate` does: the statistics of what reaches that stage, measured
    by streaming the file through the stages before it. Returns what to restore."""
    restore = []
    for k, plugin in enumerate(chain.plugins):
        if isinstance(plugin, StemSeparator) and plugin.needs_track_stats:
            before = Chain(chain.plugins[:k])
            stats = RunningStats()
            before.prepare(source.sample_rate, source.channels)
            for block in source.blocks(stop):
                stats.add(before.process(block, source.sample_rate, reset=False)[None])
            stats.add(before.flush()[None])
            restore.append((plugin, plugin.track_stats))
            plugin.track_stats = stats.get()
    return restore


def _render_file(
    source: Source,
    chain: Chain,
    target: Path,
    bit_depth: Optional[int],
    sample_rate: Optional[int],
    reporter: Reporter,
    stop: Optional[threading.Event],
) -> Tuple[Path, str]:
    """Render one file; returns the file written and the writer's clipping warning ("" if none)."""
    rate, channels, frames = source.sample_rate, source.channels, source.frames
    out_rate = sample_rate or rate
    resampler = StreamResampler(rate, out_rate, channels)
    expected = round(frames * out_rate / rate)
    restore = _stage_track_stats(source, chain, stop)
    start = time.perf_counter()
    try:
        with StemWriter({"out": target}, out_rate, channels, bit_depth, stage="the chain") as writer:
            chain.prepare(rate, channels)
            done = 0

            def emit(y: np.ndarray, last: bool = False) -> None:
                nonlocal done
                y = resampler.push(y, last=last) if not resampler.identity else y
                y = y[:, : max(0, expected - done)]
                done += y.shape[1]
                writer.write({"out": y})

            for block in source.blocks(stop):
                emit(chain.process(block, rate, reset=False))
                reporter.update(source.path, source.file.tell() / rate, source.seconds, time.perf_counter() - start)
            emit(chain.flush(), last=True)
            if done < expected:  # the resampler's last fraction of a sample
                writer.write({"out": np.zeros((channels, expected - done), np.float32)})
            return writer.commit()[0], writer.clipping()
    finally:
        chain.reset()
        for plugin, stats in restore:
            plugin.track_stats = stats


# -- plans ---------------------------------------------------------------------------


class PlanError(ValueError):
    """A plan that cannot run; the message names the file and line."""


CHAIN_HEADER, INPUTS_KEY, OUTPUT_HEADER = r"^\s*\[\[chain\]\]", r"^\s*inputs\b", r"^\s*\[output\]"


def _line_of(text: str, pattern: str, occurrence: int = 0, after: int = 0) -> int:
    """The line (1-based) of the `occurrence`-th match of `pattern` from line `after` on;
    tomllib keeps no positions."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if i + 1 >= after and re.search(pattern, line)]
    return hits[min(occurrence, len(hits) - 1)] if hits else max(after, 1)


def _inline_chain_lines(text: str) -> List[int]:
    """The lines (1-based) where the tables of an inline ``chain = [{...}, {...}]`` begin, in
    order (empty for [[chain]] tables); brackets in strings and comments do not count."""
    start = re.search(r"^\s*chain\s*=\s*\[", text, re.M)
    if start is None:
        return []
    lines, depth, quote, line = [], 0, None, text.count("\n", 0, start.end()) + 1
    i = start.end() - 1
    while i < len(text):
        c = text[i]
        if c == "\n":
            line += 1
        elif quote is not None:
            if c == "\\" and quote == '"':
                i += 1  # an escaped character
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "#":
            i = text.find("\n", i) - 1 if "\n" in text[i:] else len(text)
        elif c in "[{":
            depth += 1
            if c == "{" and depth == 2:
                lines.append(line)
        elif c in "]}":
            depth -= 1
            if depth == 0:
                break
        i += 1
    return lines


_TYPE_NAMES = {
    str: "text in quotes",
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    dict: "a table such as { vocals = 0.0 }",
    list: 'a list such as ["song.wav"]',
}


class _Checker:
    """Type checks for a plan's values, with errors that name the key, its line and what
    to write instead."""

    def __init__(self, path: Path, text: str):
        self.path, self.text = path, text

    def where(self, key: str, after: int = 0) -> str:
        # a key starts its line, or follows { or , in an inline table
        line = _line_of(self.text, r"(?:^|[{,])\s*" + re.escape(key) + r"\s*=", after=after)
        return f"{self.path}:{line}"

    def get(self, table: dict, key: str, types: tuple, default: Any = None, after: int = 0) -> Any:
        if key not in table:
            return default
        value = table[key]
        if isinstance(value, bool) and bool not in types:  # TOML true is not a number
            ok = False
        elif isinstance(value, int) and float in types:
            ok = True
        else:
            ok = isinstance(value, types)
        if not ok:
            want = " or ".join(_TYPE_NAMES[t] for t in types)
            raise PlanError(f"{self.where(key, after)}: {key} must be {want}, got {value!r}")
        return value

    def gains(self, entry: dict, key: str, after: int) -> Optional[dict]:
        table = self.get(entry, key, (dict,), None, after)
        if table is None:
            return None
        for stem, value in table.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PlanError(f"{self.where(key, after)}: {key}.{stem} must be a number, got {value!r}")
        return table


# pedalboard classes that are not one effect a plan can name
CONTAINERS = ("Pedalboard", "Chain", "Mix")
LOADED_BY_PATH = ("ExternalPlugin", "VST3Plugin", "AudioUnitPlugin")


def _native_plugin(entry: dict, where: str, check: _Checker, after: int):
    name = entry["plugin"]
    if "/" in name or name.endswith((".vst3", ".component")):
        if not Path(name).exists():
            raise PlanError(f"{where}: no plugin file {name!r}")
        parameters = check.get(entry, "parameters", (dict,), {}, after)
        try:
            plugin = pedalboard.load_plugin(name)
        except (ImportError, RuntimeError, ValueError, TypeError) as e:
            raise PlanError(f"{where}: cannot load {name}: {str(e).splitlines()[0]}") from None
        # Checked here, key by key: pedalboard's own check of an unknown name fails on
        # its way to the message (AttributeError '_parameter_weakrefs').
        accepted = sorted(plugin.parameters)
        unknown = [k for k in parameters if k not in accepted]
        if unknown:
            raise PlanError(
                f"{check.where('parameters', after)}: {Path(name).name} has no "
                f"parameter {unknown[0]!r}; it takes {', '.join(accepted) or 'none'}"
            )
        for key, value in parameters.items():
            try:
                setattr(plugin, key, value)
            except (TypeError, ValueError, RuntimeError) as e:
                raise PlanError(
                    f"{check.where('parameters', after)}: {Path(name).name} parameter "
                    f"{key} = {value!r}: {str(e).splitlines()[0]}"
                ) from None
        return plugin
    if name in CONTAINERS:
        raise PlanError(
            f"{where}: {name} holds other plugins; a plan's chain is the container: "
            "give each plugin its own [[chain]] entry, in order"
        )
    if name in LOADED_BY_PATH:
        raise PlanError(
            f'{where}: VST3 and AU plugins are loaded by path: plugin = "/path/to/Effect.vst3" (parameters = {{ ... }})'
        )
    cls = getattr(pedalboard, name, None)
    if not (isinstance(cls, type) and issubclass(cls, pedalboard.Plugin)) or name == "Plugin":
        known = [
            n
            for n in dir(pedalboard)
            if isinstance(getattr(pedalboard, n), type)
            and issubclass(getattr(pedalboard, n), pedalboard.Plugin)
            and n not in CONTAINERS + LOADED_BY_PATH + ("Plugin",)
        ]
        hint = difflib.get_close_matches(name, known + ["stemforge"], n=1)
        raise PlanError(f"{where}: unknown plugin {name!r}" + (f" (did you mean {hint[0]}?)" if hint else ""))
    params = {k: v for k, v in entry.items() if k != "plugin"}
    accepted = sorted(
        k
        for k in dir(cls)
        if isinstance(getattr(cls, k, None), property)
        and not k.startswith("_")
        and k not in ("is_effect", "is_instrument")
    )
    unknown = [k for k in params if k not in accepted]
    if unknown:
        raise PlanError(
            f"{check.where(unknown[0], after)}: {name} has no parameter {unknown[0]!r}; it takes {', '.join(accepted)}"
        )
    try:
        plugin = cls()
    except (TypeError, ValueError, RuntimeError):  # a plugin with required arguments: all at once
        try:
            return cls(**params)
        except (TypeError, ValueError, RuntimeError) as e:  # Convolution: a missing file
            raise PlanError(
                f"{where}: bad value for {name} ({', '.join(params) or 'no parameters'}): {str(e).splitlines()[0]}"
            ) from None
    for key, value in params.items():  # one by one, so that an error names its key
        try:
            setattr(plugin, key, value)
        except (TypeError, ValueError, RuntimeError) as e:
            reason = "wrong type" if isinstance(e, TypeError) else str(e).splitlines()[0]
            raise PlanError(f"{check.where(key, after)}: {name}.{key} = {value!r}: {reason}") from None
    return plugin


def _stemforge_processor(entry: dict, where: str, check: _Checker, after: int) -> StemSeparator:
    unknown = set(entry) - STEMFORGE_KEYS
    if unknown:
        raise PlanError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))} for stemforge; "
            f"use {', '.join(sorted(STEMFORGE_KEYS - {'plugin'}))}"
        )
    preset = check.get(entry, "preset", (str,), None, after)
    if preset is not None and preset not in PRESETS:
        raise PlanError(
            f"{check.where('preset', after)}: preset must be one of "
            f'{", ".join(PRESETS)}; use model = "file.ts" for other models'
        )
    model = check.get(entry, "model", (str,), None, after)
    stem = check.get(entry, "stem", (str,), None, after)
    gains = check.gains(entry, "gains", after)
    gains_db = check.gains(entry, "gains_db", after)
    if gains is not None and gains_db is not None:  # one would silently replace the other
        raise PlanError(
            f"{check.where('gains_db', after)}: give gains (linear) or gains_db "
            "(decibels), not both; write every stem's gain in one of them"
        )
    if gains_db is not None:
        gains = {k: 10 ** (float(v) / 20) for k, v in gains_db.items()}
    residual = check.get(entry, "residual", (str,), "auto", after)
    threads = check.get(entry, "threads", (int,), None, after)
    try:
        return StemSeparator(model or preset, stem=stem, gains=gains, residual=residual, threads=threads)
    except ValueError as e:  # includes ModelError
        raise PlanError(f"{where}: {e}") from None


def load_plan(path: Union[str, Path]) -> dict:
    """Read and check a plan; returns the arguments of `render_batch` (inputs, chain,
    output_dir and the output options)."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # TOML is UTF-8; editors on Windows may add a BOM
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise PlanError(
            f"{path}:{line}: the plan is not UTF-8 text (byte {raw[e.start]:#04x}); save it as UTF-8"
        ) from None
    try:
        plan = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PlanError(f"{path}: {e}") from None
    check = _Checker(path, text)
    unknown = set(plan) - {"inputs", "recursive", "chain", "output"}
    if unknown:
        key = sorted(unknown)[0]
        line = _line_of(text, r"^\s*\[*" + re.escape(key))
        raise PlanError(f"{path}:{line}: unknown key {key!r}; a plan has inputs, recursive, chain and output")
    inputs = check.get(plan, "inputs", (str, list))
    if not inputs:
        raise PlanError(f'{path}: the plan names no inputs (inputs = ["song.wav"])')
    inputs = [inputs] if isinstance(inputs, str) else inputs
    where = f"{path}:{_line_of(text, INPUTS_KEY)}"
    if not all(isinstance(i, str) for i in inputs):
        raise PlanError(f"{where}: inputs must be file names, folders or patterns in quotes")
    recursive = check.get(plan, "recursive", (bool,), False)
    out = check.get(plan, "output", (dict,), {})
    out_line = _line_of(text, OUTPUT_HEADER)
    allowed = {"folder", "format", "bit_depth", "sample_rate", "filename", "overwrite"}
    if set(out) - allowed:
        raise PlanError(
            f"{path}:{out_line}: unknown output key(s) "
            f"{', '.join(sorted(set(out) - allowed))}; use {', '.join(sorted(allowed))}"
        )
    base = path.parent
    folder = Path(check.get(out, "folder", (str,), "rendered", out_line))
    folder = folder if folder.is_absolute() else base / folder
    resolved = [str(Path(i) if Path(i).is_absolute() else base / i) for i in inputs]
    options = dict(
        format=check.get(out, "format", (str,), "wav", out_line),
        bit_depth=check.get(out, "bit_depth", (int,), None, out_line),
        sample_rate=check.get(out, "sample_rate", (int,), None, out_line),
        filename=check.get(out, "filename", (str,), DEFAULT_RENDER_TEMPLATE, out_line),
        overwrite=check.get(out, "overwrite", (bool,), False, out_line),
    )
    files = find_inputs(
        resolved,
        recursive,
        exclude=[folder],
        outputs_of=lambda found: _earlier_outputs(found, folder, options["filename"], options["format"]),
    )
    for f in files:
        if not f.is_file() and not f.is_symlink():  # a bad link: open_audio says what it is
            raise PlanError(f"{where}: no such input file {f}")
        try:
            with open_audio(f):
                pass
        except ExportError as e:  # every input is opened now, not half way through the batch
            raise PlanError(f"{where}: {e}") from None
    if not files:
        raise PlanError(f"{where}: no audio files match {inputs}")
    chain_entries = check.get(plan, "chain", (list,), [])
    chain = []
    inline = [] if re.search(CHAIN_HEADER, text, re.M) else _inline_chain_lines(text)
    for k, entry in enumerate(chain_entries):
        line = inline[k] if k < len(inline) else _line_of(text, CHAIN_HEADER, k)
        where = f"{path}:{line}"
        if not isinstance(entry, dict):
            raise PlanError(f"{where}: each chain entry is a [[chain]] table")
        if not isinstance(entry.get("plugin"), str):
            raise PlanError(f'{where}: a [[chain]] entry needs plugin = "..." (a name in quotes)')
        chain.append(
            _stemforge_processor(entry, where, check, line)
            if entry["plugin"] == "stemforge"
            else _native_plugin(entry, where, check, line)
        )
    try:
        check_format(options["format"], options["bit_depth"])
        check_template(
            options["filename"], need_stem=False, option="filename", fmt=options["format"], known=RENDER_FIELDS
        )
        if options["sample_rate"] is not None:
            check_rate(options["sample_rate"])
        check_output_folder(folder)
        targets = {
            f: [
                target_path(
                    folder,
                    options["filename"],
                    track=f.stem,
                    stem="",
                    ext=options["format"],
                    model="",
                    preset="",
                    index=i + 1,
                )
            ]
            for i, f in enumerate(files)
        }
        check_targets(targets, files, hint="put {track} or {index} in filename")
    except ValueError as e:
        raise PlanError(f"{path}:{out_line}: {e}") from None
    return {"inputs": files, "chain": chain, "output_dir": folder, "recursive": False, **options}
