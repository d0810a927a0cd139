"""The command line: ``stemforge separate INPUT... [options]``.

Each input streams from disk through a `StemSplitter` in blocks, so memory
does not grow with the file's length; every output is written to a hidden
partial file and renamed when complete, so an interrupted run (Ctrl-C,
kill) leaves no partial stem, and a second run skips what is complete. A
file that cannot be read is reported with its reason and skipped; the batch
goes on and the exit status says whether everything was exported.

    stemforge separate song.flac                       # stems/song/{drums,bass,other,vocals}.wav
    stemforge separate album/ -r --two-stems vocals --format flac --bit-depth 24
    stemforge separate "*.wav" --preset live --filename "{index}-{track}/{stem}.{ext}"
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional

from pedalboard.io import AudioFile

from .core.engine import RunningStats
from .core.model import Model, ModelError, load_model
from .core.processor import StemSplitter
from .errors import ExportError, Interrupted
from .io.formats import BIT_DEPTHS, check_format
from .io.reading import find_inputs, read_blocks
from .io.sessions import FORMATS as SESSION_FORMATS
from .io.sessions import SessionTrack, write_session
from .io.writing import DEFAULT_TEMPLATE, StemWriter, check_template, partial_path, target_path

class Progress:
    """A progress bar per file and for the batch on a terminal; a few plain lines otherwise."""

    def __init__(self, files: int, mode: str):
        self.files, self.mode, self.done = files, mode, 0
        self._lock = threading.Lock()
        self._last: Dict[str, float] = {}

    def say(self, text: str, error: bool = False) -> None:
        if self.mode != "quiet" or error:
            with self._lock:
                end = "\x1b[K\n" if self.mode == "bar" else "\n"
                print(("\r" if self.mode == "bar" else "") + text, end=end, flush=True,
                      file=sys.stderr if error else sys.stdout)

    def update(self, name: str, done_s: float, total_s: float, elapsed: float) -> None:
        if self.mode == "quiet" or total_s <= 0:
            return
        share = min(1.0, done_s / total_s)
        rtf = elapsed / done_s if done_s else 0.0
        eta = (total_s - done_s) * rtf
        if self.mode == "bar":
            bar = "#" * int(share * 24)
            with self._lock:
                print(f"\r[{self.done + 1}/{self.files}] {name[:30]:<30} [{bar:<24}] {100 * share:5.1f}% "
                      f"ETA {eta:5.1f}s RTF {rtf:.3f}\x1b[K", end="", flush=True)
        elif share - self._last.get(name, 0.0) >= 0.25 or share == 1.0:
            self._last[name] = share
            self.say(f"{name}: {100 * share:.0f}% (RTF {rtf:.3f}, ETA {eta:.0f}s)")


def output_gains(args, model: Model) -> (List[str], Dict[str, Dict[str, float]]):
    if args.two_stems:
        stem = args.two_stems
        if stem not in model.stems:
            raise ExportError(f"--two-stems {stem}: this model has {', '.join(model.stems)}")
        return [stem], {f"no_{stem}": {stem: 0.0}}
    stems = args.stems.split(",") if args.stems else list(model.stems)
    unknown = [s for s in stems if s not in model.stems]
    if unknown:
        raise ExportError(f"--stems {','.join(unknown)}: this model has {', '.join(model.stems)}")
    return stems, {}


def export_file(path: Path, index: int, args, model: Model, inputs: set, progress: Progress,
                stop: threading.Event) -> str:
    """Export one input; returns a line for the summary. Raises on a bad input."""
    stems, extra = output_gains(args, model)
    names = stems + list(extra)
    targets = {s: target_path(args.output, args.filename, track=path.stem, stem=s, ext=args.format,
                              model=model.name, preset=args.preset or model.name, index=index + 1)
               for s in names}
    if len(set(targets.values())) < len(targets):
        raise ExportError(f"--filename {args.filename!r} gives several stems the same file")
    clash = [t for t in targets.values() if t in inputs]
    if clash:
        raise ExportError(f"would overwrite the input {clash[0]}; choose another output folder")
    if args.dry_run:
        return "\n".join(f"  {t}" for t in targets.values())
    if not args.overwrite and all(t.exists() for t in targets.values()):
        for t in targets.values():  # leftovers of a run killed before it could clean up
            partial_path(t).unlink(missing_ok=True)
        return f"{path}: complete, skipped (--overwrite to redo)"
    with AudioFile(str(path)) as f:
        rate, channels, frames = int(f.samplerate), f.num_channels, f.frames
        if frames == 0:
            raise ExportError("the file holds no audio")
        if channels > 2:
            raise ExportError(f"{channels} channels; stemforge exports mono or stereo files")
        splitter = StemSplitter(model, rate, channels, stems, outputs=extra)
        if splitter.needs_track_stats:
            splitter.set_track_stats(file_stats(f, frames, stop))
        writer = StemWriter(targets, rate, channels, args.format, args.bit_depth)
        start = time.perf_counter()
        try:
            for block in read_blocks(f, frames, stop):
                writer.write(splitter.push(block))
                progress.update(path.name, f.tell() / rate, frames / rate, time.perf_counter() - start)
            writer.write(splitter.flush())
        except BaseException:
            writer.abort()
            raise
    written = writer.commit()
    took = time.perf_counter() - start
    folder = written[0].parent
    tracks = [SessionTrack(path.stem, path, muted=True)] + [SessionTrack(s, t) for s, t in targets.items()]
    for kind in args.sessions:
        written.append(write_session(kind, folder / f"{path.stem}{SESSION_FORMATS[kind]}", tracks,
                                     rate, channels, frames, title=path.stem))
    return (f"{path} -> {folder}/ ({', '.join(p.name for p in written)}) in {took:.1f} s, "
            f"RTF {took / (frames / rate):.3f}")


def file_stats(f: AudioFile, frames: int, stop: threading.Event) -> tuple:
    """The whole file's (mean, std) for models that normalise by it (Demucs), read in
    blocks so that memory stays flat; the file is left at its start."""
    stats = RunningStats()
    for block in read_blocks(f, frames, stop):
        stats.add(block[None])
    f.seek(0)
    return stats.get()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stemforge", description="Split music into stems.")
    sub = parser.add_subparsers(dest="command", required=True)
    sep = sub.add_parser("separate", help="export the stems of audio files",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sep.add_argument("inputs", nargs="+", help="audio files, folders or glob patterns "
                     "(wav, flac, aiff, ogg, mp3)")
    sep.add_argument("-r", "--recursive", action="store_true", help="look into sub-folders")
    sep.add_argument("-o", "--output", type=Path, default=Path("stems"),
                     help="output folder (default: ./stems)")
    which = sep.add_mutually_exclusive_group()
    which.add_argument("--preset", choices=["live", "studio"], help="a shipped model (default: studio)")
    which.add_argument("-m", "--model", help="a model name or .ts file that follows the contract")
    stems = sep.add_mutually_exclusive_group()
    stems.add_argument("--stems", help="comma-separated stems to export (default: all)")
    stems.add_argument("--two-stems", metavar="STEM", help="export STEM and no_STEM (e.g. vocals)")
    sep.add_argument("--format", default="wav", choices=sorted(BIT_DEPTHS))
    sep.add_argument("--bit-depth", type=int, choices=[16, 24, 32],
                     help="16, 24 or 32 (float); flac: 16 or 24 (default: 32 for wav/aiff, 24 for flac)")
    sep.add_argument("--filename", default=DEFAULT_TEMPLATE,
                     help="name template under the output folder; fields {track} {stem} {ext} "
                     "{model} {preset} {index} (default: %(default)s)")
    sep.add_argument("--session", default="", metavar="dawproject,reaper",
                     help="also write DAW sessions with the stems beside the muted original")
    sep.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    sep.add_argument("--dry-run", action="store_true", help="list what would be written, and stop")
    sep.add_argument("-j", "--jobs", type=int, default=1, help="files in parallel (default: 1)")
    sep.add_argument("-q", "--quiet", action="store_true", help="print only errors and the summary")
    plan = sub.add_parser("render", help="run a render plan (TOML): inputs, a chain, outputs")
    plan.add_argument("plan", type=Path, help="the plan file; see the README for examples")
    imp = sub.add_parser("import-model", help="turn a Demucs or Open-Unmix checkpoint into a "
                         "stemforge model file")
    imp.add_argument("kind", choices=["demucs", "openunmix"])
    imp.add_argument("checkpoint", type=Path,
                     help="demucs: a .th file (e.g. from ~/.cache/torch/hub/checkpoints); "
                     "openunmix: a model folder (separator.json, <target>.json, <target>.pth)")
    imp.add_argument("-o", "--output", type=Path, required=True, help="the model file to write (.ts)")
    imp.add_argument("--name", help="the model's name (default: the checkpoint's)")
    imp.add_argument("--overlap", type=float, default=0.25, help="window overlap (default: 0.25)")
    imp.add_argument("--segment", type=float, help="demucs: window in seconds (default: the model's)")
    imp.add_argument("--window", type=float, default=10.0,
                     help="openunmix: window in seconds (default: %(default)s)")
    imp.add_argument("--targets", help="openunmix: comma-separated targets (default: all in the folder)")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    live = sub.add_parser("live", help="separate an audio interface's input in real time",
                          description="Run a model (default: the live preset) on an input device "
                          "and play the result on an output device, buffer by buffer. "
                          "--list-devices shows the device names; --simulate FILE plays a file "
                          "at real-time pace instead, to check that this machine keeps up.")
    out = live.add_mutually_exclusive_group()
    out.add_argument("--stem", help="play this stem (e.g. vocals: an acapella)")
    out.add_argument("--gains", help="play the stems mixed with these gains, e.g. vocals=0 "
                     "(karaoke) or vocals=1.5,drums=0.5; stems not named play at 1")
    which = live.add_mutually_exclusive_group()
    which.add_argument("--preset", choices=["live", "studio"], help="a shipped model (default: live)")
    which.add_argument("-m", "--model", help="a model name or .ts file")
    live.add_argument("--input", help="input device name (default: the system's default)")
    live.add_argument("--output", help="output device name (default: the system's default)")
    live.add_argument("--buffer-size", type=int, default=256, help="samples per buffer (default: 256)")
    live.add_argument("--sample-rate", type=float, default=44100.0)
    live.add_argument("--channels", type=int, default=2, choices=[1, 2])
    live.add_argument("--queue", type=int, default=3, help="output buffers queued (default: 3)")
    live.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    live.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    live.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    live.add_argument("--simulate", type=Path, metavar="FILE",
                      help="no device: play FILE at real-time pace through the same loop")
    sec = sub.add_parser("sections", help="find the songs in a long recording (a singing stream)",
                         description="Find where someone sings (not talks, not silence, not music "
                         "alone) in a long recording, and write the songs as labels, CSV, a CUE "
                         "sheet, DAW markers, and with --cut as files. Streams: memory does not "
                         "grow with the recording's length.")
    sec.add_argument("input", type=Path, help="an audio file (wav, flac, aiff, ogg, mp3)")
    sec.add_argument("-o", "--output", type=Path, default=Path("sections"),
                     help="output folder (default: ./sections)")
    which = sec.add_mutually_exclusive_group()
    which.add_argument("--preset", choices=["live", "studio"], help="separator (default: live, fast)")
    which.add_argument("-m", "--model", help="a model name or .ts file with a vocals stem")
    sec.add_argument("--write", default="labels,csv,cue", metavar="labels,csv,cue,reaper,dawproject",
                     help="what to write (default: %(default)s)")
    sec.add_argument("--cut", action="store_true", help="also write each song as its own file")
    sec.add_argument("--format", default="wav", choices=sorted(BIT_DEPTHS), help="--cut's format")
    sec.add_argument("--bit-depth", type=int, choices=[16, 24, 32], help="--cut's bit depth")
    from .apps.sections import Rules
    for field, help_text in (("smooth", "window-mean smoothing, s"), ("threshold", "song threshold"),
                             ("merge_gap", "merge songs this close, s"),
                             ("max_song", "never merge beyond this, s"),
                             ("extend_above", "extend edges while the probability is at least"),
                             ("min_song", "shorter detections are dropped, s")):
        sec.add_argument(f"--{field.replace('_', '-')}", type=float, default=getattr(Rules(), field),
                         help=f"{help_text} (default: %(default)s)")
    sec.add_argument("--threads", type=int, help="torch threads")
    sec.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ev = sub.add_parser("evaluate", help="SDR, SIR, SAR, ISR, global SDR and NSDR of estimated stems",
                        description="Compare ESTIMATE_DIR with REFERENCE_DIR: folders of <stem>.wav "
                        "(one track), or folders of such track folders with the same names. The "
                        "mixture is REFERENCE/mixture.wav if present, else the sum of the stems.")
    ev.add_argument("reference", type=Path, metavar="REFERENCE_DIR")
    ev.add_argument("estimate", type=Path, metavar="ESTIMATE_DIR")
    ev.add_argument("--json", metavar="PATH", help="also write the scores as JSON ('-': stdout only)")
    ev.add_argument("--global-only", action="store_true",
                    help="only global SDR and NSDR (fast: no BSS Eval)")
    return parser


def parse_gains(text: str) -> Dict[str, float]:
    gains = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, eq, value = item.partition("=")
        try:
            gains[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--gains {text!r}: write STEM=GAIN pairs separated by commas, "
                             "e.g. vocals=0,drums=0.5") from None
        if not eq:
            raise ValueError(f"--gains {text!r}: {item!r} has no '=GAIN'")
    return gains


def live_command(args) -> int:
    from .apps import live
    from .core.processor import StemSeparator
    if args.list_devices:
        print(live.list_devices())
        return 0
    try:
        separator = StemSeparator(args.model or args.preset or "live", stem=args.stem,
                                  gains=parse_gains(args.gains) if args.gains else None,
                                  threads=args.threads)
        if args.simulate:
            with AudioFile(str(args.simulate)) as f:
                audio = f.read(f.frames)
                rate = f.samplerate
            device = live.SimulatedDevice(audio, rate, args.buffer_size, args.queue)
        else:
            device = live.AudioStreamDevice(args.input, args.output, args.sample_rate,
                                            args.buffer_size, args.channels, args.queue)
    except (ModelError, ValueError, OSError, RuntimeError) as e:
        print(f"stemforge: {e}", file=sys.stderr)
        if not args.simulate and not args.list_devices:
            print("stemforge: --list-devices shows the devices; --simulate FILE runs without one",
                  file=sys.stderr)
        return 1
    separator.prepare(device.sample_rate, device.channels)
    ms = 1000 * separator.latency_samples / device.sample_rate
    buffers = device.buffer_size * (1 + args.queue)
    print(f"{separator!r}: adds {separator.latency_samples} samples ({ms:.1f} ms) at "
          f"{device.sample_rate:g} Hz, plus {buffers} samples ({1000 * buffers / device.sample_rate:.1f} ms) "
          "of device buffers; Ctrl-C stops", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    last = {"underruns": 0}

    def report(stats) -> None:
        if stats.underruns != last["underruns"]:
            print(f"  {stats.blocks * stats.buffer_size / stats.sample_rate:7.1f} s: "
                  f"{stats.underruns} under-run(s) so far", flush=True)
            last["underruns"] = stats.underruns
    stats = live.run_live(separator, device, seconds=args.seconds, stop=stop, report=report)
    print(stats.summary())
    return 0 if stats.underruns == 0 else 3


def sections_command(args) -> int:
    from .apps.sections import Rules, split_file
    rules = Rules(args.smooth, args.threshold, args.merge_gap, args.max_song, args.extend_above,
                  args.min_song)
    outputs = [w.strip() for w in args.write.split(",") if w.strip()]
    progress = None if args.quiet else Progress(1, "bar" if sys.stdout.isatty() else "lines")
    start = time.perf_counter()

    def report(done: float, total: float) -> None:
        progress.update(args.input.name, done, total, time.perf_counter() - start)
    try:
        check_format(args.format, args.bit_depth)
        if not args.input.is_file():
            raise ExportError(f"{args.input}: no such file")
        songs, written = split_file(args.input, args.output, args.model or args.preset or "live",
                                    rules, outputs, args.cut, args.format, args.bit_depth,
                                    args.threads, None if progress is None else report)
    except (ExportError, ModelError, ValueError, OSError, RuntimeError) as e:
        print(f"\nstemforge: {e}" if progress and progress.mode == "bar" else f"stemforge: {e}",
              file=sys.stderr)
        return 1
    if progress and progress.mode == "bar":
        print()
    for i, song in enumerate(songs, 1):
        print(f"song {i}: {song.start:8.1f} s - {song.end:8.1f} s ({song.duration / 60:.1f} min)")
    print(f"{len(songs)} song(s) in {args.input.name}; wrote {len(written)} file(s) to {args.output}")
    return 0


def evaluate_command(args) -> int:
    import json
    from .apps.evaluate import EvaluationError, evaluate_folders, format_table, summary
    quiet = args.json == "-"
    try:
        results = evaluate_folders(args.reference, args.estimate, not args.global_only,
                                   None if quiet else lambda name, scores: print(format_table(scores, name)))
    except EvaluationError as e:
        print(f"stemforge: {e}", file=sys.stderr)
        return 1
    overall = summary(results)
    report = {"tracks": results, "summary": overall,
              "conventions": {"sdr/sir/sar/isr": "BSS Eval v4 as museval, median over 1 s frames; summary: "
                              "median over tracks", "global_sdr/nsdr": "whole track (MDX); summary: "
                              "mean over tracks"}}
    # NaN (a silent stem's BSS Eval medians) is not JSON: null.
    text = json.dumps(json.loads(json.dumps(report), parse_constant=lambda _: None), indent=1)
    if quiet:
        print(text)
        return 0
    if len(results) > 1:
        print(format_table(overall, f"summary over {len(results)} tracks"))
    if args.json:
        Path(args.json).write_text(text)
    return 0


def import_command(args) -> int:
    from .importers import import_model
    out = args.output
    if out.suffix != ".ts":
        print(f"stemforge: {out}: model files end in .ts", file=sys.stderr)
        return 2
    if out.exists() and not args.overwrite:
        print(f"stemforge: {out} exists; --overwrite to replace it", file=sys.stderr)
        return 2
    if out.resolve() == args.checkpoint.resolve():
        print(f"stemforge: {out} is the checkpoint itself; choose another output", file=sys.stderr)
        return 2
    options = dict(name=args.name, overlap=args.overlap)
    if args.kind == "demucs":
        options["segment"] = args.segment
    else:
        options["window"] = args.window
        options["targets"] = args.targets.split(",") if args.targets else None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        import_model(args.kind, args.checkpoint, out, **options)
        model = load_model(out)
    except (ImportError, OSError, ValueError) as e:  # ModelError is a ValueError
        print(f"stemforge: {e}", file=sys.stderr)
        return 1
    from .core.processor import StemSeparator
    sep = StemSeparator(model)
    sep.prepare(model.sample_rate, model.channels)
    print(f"wrote {out}: {model!r}; latency {sep.latency_samples} samples at {model.sample_rate} Hz")
    return 0


def render_command(args) -> int:
    from .apps.render import PlanError, load_plan, render
    try:
        plan = load_plan(args.plan)
    except (PlanError, OSError) as e:
        print(f"stemforge: {e}", file=sys.stderr)
        return 2
    try:
        written = render(plan.pop("inputs"), plan.pop("chain"), plan.pop("output_dir"), **plan)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"stemforge: {e}", file=sys.stderr)
        return 1
    for p in written:
        print(p)
    print(f"{len(written)} file(s) rendered")
    return 0


def check_args(args) -> None:
    if args.bit_depth is None and BIT_DEPTHS[args.format]:
        args.bit_depth = 24 if args.format == "flac" else 32
    check_format(args.format, args.bit_depth)
    check_template(args.filename)
    args.sessions = [k for k in args.session.split(",") if k]
    unknown = [k for k in args.sessions if k not in SESSION_FORMATS]
    if unknown:
        raise ExportError(f"unknown --session {', '.join(unknown)}; choose from "
                          f"{', '.join(SESSION_FORMATS)}")
    if args.jobs < 1:
        raise ExportError("--jobs must be at least 1")


def separate_command(args) -> int:
    try:
        check_args(args)
        model = load_model(args.preset or args.model)
    except (ExportError, ModelError) as e:
        print(f"stemforge: {e}", file=sys.stderr)
        return 2
    if model.info.untrained:
        print(f"stemforge: {model.name} is an UNTRAINED test fixture: its stems are not a "
              "separation (they do sum back to the mix)", file=sys.stderr)
    inputs = find_inputs(args.inputs, args.recursive)
    if not inputs:
        print("stemforge: no audio files found in " + " ".join(args.inputs), file=sys.stderr)
        return 1
    # The CLI owns its process: share the cores among the jobs instead of oversubscribing.
    import torch
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.jobs))
    mode = "quiet" if args.quiet else "bar" if sys.stderr.isatty() and sys.stdout.isatty() \
        and args.jobs == 1 else "lines"
    progress = Progress(len(inputs), mode)
    stop = threading.Event()
    resolved = {p.resolve() for p in inputs}
    failures: List[str] = []

    def one(item) -> None:
        index, path = item
        try:
            line = export_file(path, index, args, model, resolved, progress, stop)
        except Interrupted:
            return
        except (OSError, ValueError, RuntimeError) as e:  # a bad input: report it, go on
            failures.append(f"{path}: {e}")
            progress.say(f"stemforge: skipped {path}: {e}", error=True)
        else:
            progress.done += 1
            if args.dry_run:
                print(f"{path} would write:\n{line}")
            elif not args.quiet:
                progress.say(line)

    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.jobs == 1:
            for item in enumerate(inputs):
                one(item)
                if stop.is_set():
                    break
        else:
            with ThreadPoolExecutor(args.jobs) as pool:
                list(pool.map(one, enumerate(inputs)))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stop.is_set():
        print("stemforge: interrupted; no partial stem was left, a rerun resumes", file=sys.stderr)
        return 130
    summary = f"{len(inputs) - len(failures)} of {len(inputs)} file(s) exported"
    if failures:
        print(f"stemforge: {summary}; {len(failures)} failed", file=sys.stderr)
        return 1
    if not args.quiet and not args.dry_run:
        print(summary)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"render": render_command, "import-model": import_command, "separate": separate_command,
                "evaluate": evaluate_command, "live": live_command,
                "sections": sections_command}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
