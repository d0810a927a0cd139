"""The command line: a thin face over the library. Each command parses its arguments and
calls one library function (``stemforge.export``, ``stemforge.render``, ...); the
commands are registered once, in COMMANDS.

torch and pedalboard (seconds to load) are imported by the commands, not by this module,
so that `main` already handles Ctrl-C while they load."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Optional

from . import __version__
from .apps.batch import DEFAULT_THREADS, FileResult, Reporter
from .errors import ExportError, Interrupted
from .io.formats import AUDIO_EXTENSIONS, FORMATS, format_help
from .io.sessions import FORMATS as SESSION_KINDS

if TYPE_CHECKING:
    from .apps.models import ModelRow

AUDIO_KINDS = ", ".join(s.lstrip(".") for s in AUDIO_EXTENSIONS if s != ".aif")


class Progress(Reporter):
    """A progress bar on a terminal, a few plain lines otherwise, nothing with --quiet;
    a file's position in the batch is the order it started in."""

    def __init__(self, mode: str):
        self.mode = mode
        self._lock = threading.Lock()
        self._last: Dict[Path, float] = {}
        self._position: Dict[Path, str] = {}

    @classmethod
    def for_terminal(cls, quiet: bool, jobs: int = 1, cluster: bool = False) -> "Progress":
        # one bar follows one file: files at once (-j, a cluster) get plain lines
        tty = sys.stderr.isatty() and sys.stdout.isatty()
        return cls("quiet" if quiet else "bar" if tty and jobs == 1 and not cluster else "lines")

    def say(self, text: str, error: bool = False) -> None:
        if self.mode != "quiet" or error:
            with self._lock:
                end = "\x1b[K\n" if self.mode == "bar" else "\n"
                print(
                    ("\r" if self.mode == "bar" else "") + text,
                    end=end,
                    flush=True,
                    file=sys.stderr if error else sys.stdout,
                )

    def start(self, position: int, total: int, path: Path) -> None:
        self._position[path] = f"[{position}/{total}]"

    def update(self, path: Path, done_s: float, total_s: float, elapsed: float) -> None:
        if self.mode == "quiet" or total_s <= 0:
            return
        share = min(1.0, done_s / total_s)
        rtf = elapsed / done_s if done_s else 0.0
        eta = (total_s - done_s) * rtf
        where = self._position.get(path, "")
        if self.mode == "bar":
            bar = "#" * int(share * 24)
            with self._lock:
                print(
                    f"\r{where} {path.name[:30]:<30} [{bar:<24}] {100 * share:5.1f}% "
                    f"ETA {eta:5.1f}s RTF {rtf:.3f}\x1b[K",
                    end="",
                    flush=True,
                )
        elif share - self._last.get(path, 0.0) >= 0.25 or share == 1.0:
            self._last[path] = share
            self.say(f"{where} {path.name}: {100 * share:.0f}% (RTF {rtf:.3f}, ETA {eta:.0f}s)")

    def retrying(self, path: Path, reason: str) -> None:
        self.say(f"stemforge: {path}: starting again on another worker: {reason}", error=True)

    def overall(self, finished: int, total: int, audio_s: float, busy_s: float, elapsed: float) -> None:
        if self.mode == "quiet" or not finished:
            return
        rtf = f", RTF {busy_s / audio_s:.3f} per worker" if audio_s else ""
        eta = elapsed / finished * (total - finished)
        self.say(
            f"cluster: {finished}/{total} files, {audio_s / max(elapsed, 1e-9):.2f} audio "
            f"hours per hour{rtf}, ETA {eta:.0f}s"
        )

    def finish(self, r: FileResult) -> None:
        if r.status == "failed":
            self.say(f"stemforge: skipped {r.input}: {r.message}", error=True)
        elif r.status == "planned":
            print(f"{r.input} would write:\n" + "\n".join(f"  {t}" for t in r.outputs), flush=True)
        elif r.status == "skipped":
            self.say(f"{r.input}: {r.message}")
        else:
            folder = r.outputs[0].parent if r.outputs else Path(".")
            rtf = f", RTF {r.seconds / r.audio_seconds:.3f}" if r.audio_seconds else ""
            self.say(f"{r.input} -> {folder}/ ({', '.join(p.name for p in r.outputs)}) in {r.seconds:.1f} s{rtf}")
            for warning in r.warnings:
                self.say(f"stemforge: warning: {r.input}: {warning}", error=True)


def fail(message: str, status: int = 1) -> int:
    print(f"stemforge: {message}", file=sys.stderr)
    return status


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """Ctrl-C and SIGTERM set an event the batch polls, so the files in progress abort
    cleanly (no partial file is left) instead of dying mid-write."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# -- options shared by several commands, defined once ----------------------------------


def add_model_flags(p: argparse.ArgumentParser, default: str) -> None:
    from .core.lookup import PRESETS

    which = p.add_mutually_exclusive_group()
    which.add_argument("--preset", choices=PRESETS, help=f"a shipped model (default: {default})")
    which.add_argument(
        "-m",
        "--model",
        help="a model name or a .ts file that follows the model contract (see docs/models-and-quality.md)",
    )
    p.set_defaults(default_model=default)


def chosen_model(args: argparse.Namespace) -> str:
    return args.model or args.preset or args.default_model


def add_threads_flag(p: argparse.ArgumentParser, default: Optional[int] = DEFAULT_THREADS) -> None:
    p.add_argument(
        "--threads",
        type=positive_int,
        default=default,
        metavar="N",
        help=f"torch threads per file (default: {default}, measured fastest on small "
        "core counts; -j shares files among cores instead)",
    )


def add_output_format_flags(p: argparse.ArgumentParser, what: str = "") -> None:
    p.add_argument("--format", default="wav", choices=sorted(FORMATS), help=f"{what}format: {format_help()}")
    p.add_argument(
        "--bit-depth",
        type=int,
        choices=[16, 24, 32],
        help=f"{what}bit depth: 16 or 24 (integer) or 32 (float, wav only); "
        "default: 32 for wav, 24 for flac and aiff; none for ogg",
    )


def stem_names(text: str) -> List[str]:
    """--stems: comma-separated names, none of them empty (an empty --stems is not "all")."""
    names = [name.strip() for name in text.split(",")]
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "name at least one stem, e.g. --stems vocals,drums (leave --stems out for all of them)"
        )
    if "" in names:
        raise argparse.ArgumentTypeError(
            f"{text!r} holds an empty name; write stem names separated by commas, e.g. vocals,drums"
        )
    return names


def stem_name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("name a stem, e.g. --two-stems vocals")
    return text.strip()


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(
            f"{text}: give a number of seconds above 0 (or leave it out to run until Ctrl-C)"
        )
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


# -- separate ---------------------------------------------------------------------------

SEPARATE_HELP = f"""\
Export the stems of audio files ({AUDIO_KINDS}): every stem has the input's sample
rate, channels and exact length, from sample 0, and the stems add up to the input.

  stemforge separate song.flac                       # stems/song/{{drums,bass,other,vocals}}.wav
  stemforge separate album/ -r --two-stems vocals --format flac --bit-depth 24
  stemforge separate "*.wav" --preset live --filename "{{index:02d}}-{{track}}/{{stem}}.{{ext}}"

Outputs are written under hidden names and renamed when complete: an interrupted
run leaves no partial stem, and a rerun skips what is complete. A file that cannot
be read is reported and skipped; the exit status is 1 if any was.
"""


def separate_arguments(p: argparse.ArgumentParser) -> None:
    from .io.writing import DEFAULT_TEMPLATE

    p.add_argument("inputs", nargs="+", help=f"audio files, folders or glob patterns ({AUDIO_KINDS})")
    p.add_argument("-r", "--recursive", action="store_true", help="look into sub-folders")
    p.add_argument("-o", "--output", type=Path, default=Path("stems"), help="output folder (default: ./stems)")
    from .core.lookup import DEFAULT_MODEL

    add_model_flags(p, DEFAULT_MODEL)
    stems = p.add_mutually_exclusive_group()
    stems.add_argument("--stems", type=stem_names, help="comma-separated stems to export (default: all)")
    stems.add_argument("--two-stems", type=stem_name, metavar="STEM", help="export STEM and no_STEM (e.g. vocals)")
    add_output_format_flags(p)
    p.add_argument(
        "--filename",
        default=DEFAULT_TEMPLATE,
        help="name template under the output folder; fields {track} {stem} {ext} "
        "{model} {preset} and the number {index} (e.g. {index:02d}) "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--session",
        default="",
        metavar=",".join(SESSION_KINDS),
        help="also write DAW sessions with the stems beside the muted original",
    )
    p.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    p.add_argument("--dry-run", action="store_true", help="list what would be written, and stop")
    p.add_argument("-j", "--jobs", type=positive_int, default=1, help="files in parallel (default: 1)")
    add_threads_flag(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the summary")
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the files on a Ray cluster: auto, "
        "HOST:PORT or ray://HOST:PORT; inputs and output must be at the same paths "
        "on every node (a shared mount); needs pip install 'stemforge[cluster]'",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="with --cluster: worker processes, each holding the model (default: one per --threads CPUs)",
    )


def separate_command(args: argparse.Namespace) -> int:
    from .apps.separate import check_options, export
    from .core.contract import ModelError
    from .core.loading import load_model

    if args.workers and not args.cluster:
        return fail(
            "--workers counts a cluster's worker processes: give --cluster too "
            "(-j N runs N files at once on this machine)",
            2,
        )
    progress = Progress.for_terminal(args.quiet, args.jobs, cluster=bool(args.cluster))
    sessions = [k for k in args.session.split(",") if k]
    try:
        check_options(
            args.format, args.bit_depth, args.filename, sessions, args.jobs, args.threads, args.workers
        )  # before the model loads
        model = load_model(chosen_model(args))
        if model.info.untrained:
            print(
                f"stemforge: {model.name} is an UNTRAINED test fixture: its stems are not a "
                "separation (they do sum back to the mix)",
                file=sys.stderr,
            )
        with stop_on_signals() as stop:
            report = export(
                args.inputs,
                args.output,
                model=model,
                stems=args.stems,
                two_stems=args.two_stems,
                format=args.format,
                bit_depth=args.bit_depth,
                filename=args.filename,
                sessions=sessions,
                recursive=args.recursive,
                overwrite=args.overwrite,
                dry_run=args.dry_run,
                jobs=args.jobs,
                threads=args.threads,
                preset_label=args.preset,
                reporter=progress,
                stop=stop,
                cluster=args.cluster,
                workers=args.workers,
            )
    except (ExportError, ModelError) as e:
        return fail(str(e), 2)
    if report.interrupted:
        return fail("interrupted; no partial stem was left, a rerun resumes", 130)
    total = len(report.files)
    done, skipped, failed = (len(report.of(s)) for s in ("done", "skipped", "failed"))
    if args.dry_run:
        print(
            f"{len(report.of('planned'))} of {total} file(s) would be exported"
            + (f", {skipped} already complete" if skipped else "")
        )
        return 0 if not failed else 1
    summary = f"{done} of {total} file(s) exported" + (f", {skipped} already complete" if skipped else "")
    if failed:
        return fail(f"{summary}; {failed} failed")
    if not args.quiet:
        print(summary)
    return 0


# -- render -----------------------------------------------------------------------------

RENDER_HELP = """\
Run a render plan: inputs through a chain of plugins into files. A plan (TOML):

  inputs = ["song.wav"]            # files, folders or glob patterns; recursive = true
  [[chain]]
  plugin = "HighpassFilter"        # any pedalboard plugin by class name, with its parameters
  cutoff_frequency_hz = 100
  [[chain]]
  plugin = "stemforge"             # preset/model, and stem = "vocals" or gains = { vocals = 0.0 }
  stem = "vocals"                  # (or gains_db); VST3/AU: plugin = "/path/Effect.vst3",
  [output]                         #   parameters = { ... }
  folder = "rendered"
  format = "wav"                   # wav flac aiff ogg; bit_depth; sample_rate
  filename = "{track}-acapella.{ext}"
  overwrite = false

The plan is checked whole before any audio is written; an error names its line.
"""


def render_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("plan", type=Path, help="the plan file (.toml)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")


def render_command(args: argparse.Namespace) -> int:
    from .apps.render import PlanError, load_plan, render_batch

    try:
        plan = load_plan(args.plan)
    except (PlanError, ExportError, OSError) as e:
        return fail(str(e), 2)
    progress = Progress.for_terminal(args.quiet)
    try:
        with stop_on_signals() as stop:
            report = render_batch(
                plan.pop("inputs"), plan.pop("chain"), plan.pop("output_dir"), reporter=progress, stop=stop, **plan
            )
    except (ExportError, OSError, ValueError, RuntimeError) as e:
        return fail(str(e), 2)
    if report.interrupted:
        return fail("interrupted; no partial file was left, a rerun resumes", 130)
    done, skipped, failed = (len(report.of(s)) for s in ("done", "skipped", "failed"))
    summary = f"{done} file(s) rendered" + (
        f", {skipped} skipped (they exist; overwrite = true redoes them)" if skipped else ""
    )
    if failed:
        return fail(f"{summary}; {failed} failed")
    print(summary)
    return 0


# -- import-model -------------------------------------------------------------------------


def import_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=["demucs", "openunmix"], help="whose checkpoint it is")
    p.add_argument(
        "checkpoint",
        type=Path,
        help="demucs: a .th file (e.g. from ~/.cache/torch/hub/checkpoints), or a bag's "
        ".yaml (demucs/remote/*.yaml) with its members' .th files beside it; "
        "openunmix: a model folder (separator.json, <target>.json, <target>.pth)",
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="the model file to write (.ts)")
    p.add_argument("--name", help="the model's name (default: the checkpoint's)")
    p.add_argument("--overlap", type=float, default=0.25, help="window overlap (default: 0.25)")
    p.add_argument("--segment", type=float, help="demucs: window in seconds (default: the model's)")
    p.add_argument("--window", type=float, default=10.0, help="openunmix: window in seconds (default: %(default)s)")
    p.add_argument("--targets", help="openunmix: comma-separated targets (default: all in the folder)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def import_command(args: argparse.Namespace) -> int:
    from .core.loading import load_model
    from .core.processor import StemSeparator
    from .importers import ImportRefused, import_model

    out = args.output
    options = dict(name=args.name, overlap=args.overlap)
    if args.kind == "demucs":
        options["segment"] = args.segment
    else:
        options["window"] = args.window
        options["targets"] = args.targets.split(",") if args.targets else None
    try:
        import_model(args.kind, args.checkpoint, out, overwrite=args.overwrite, **options)
        model = load_model(out)
    except ImportRefused as e:
        return fail(str(e), 2)
    except (ImportError, OSError, ValueError) as e:  # ModelError is a ValueError
        return fail(str(e))
    sep = StemSeparator(model)
    sep.prepare(model.sample_rate, model.channels)
    print(f"wrote {out}: {model!r}; latency {sep.latency_samples} samples at {model.sample_rate} Hz")
    return 0


# -- models -------------------------------------------------------------------------------

MODELS_HELP = """\
  stemforge models list                  # every model a name finds, and those you can pull
  stemforge models pull htdemucs_ft      # download, verify, import: then --model htdemucs_ft

Pulled models go to $STEMFORGE_HOME/models (default: ~/.cache/stemforge/models), where the
CLI, StemSeparator, render plans, Chain and the VST3's model menu find them by name. The catalogue
of names, URLs, checksums and licences is built in; --catalogue FILE or $STEMFORGE_CATALOGUE
replaces it, --mirror URL or $STEMFORGE_MIRROR fetches every file as <mirror>/<file>.
"""


def models_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(
        dest="action", required=True, metavar="list|pull", help="list the models, or pull one by name"
    )
    listing = sub.add_parser("list", help="models by name: kind, stems, rate, latency, licence, source, quality")
    pulling = sub.add_parser("pull", help="download, verify and import a published model")
    pulling.add_argument("name", help="a name from `stemforge models list` (e.g. htdemucs_ft)")
    pulling.add_argument(
        "--mirror",
        help="fetch every file as MIRROR/<file> (a URL or a folder); "
        "default: $STEMFORGE_MIRROR, else the official URLs",
    )
    pulling.add_argument("--force", action="store_true", help="pull again if pulled before")
    pulling.add_argument(
        "--keep-downloads", action="store_true", help="keep the verified checkpoints in the downloads folder"
    )
    pulling.add_argument("-q", "--quiet", action="store_true", help="no progress")
    for q in (listing, pulling):
        q.add_argument(
            "--catalogue", help="a catalogue file (JSON) instead of the built-in one (default: $STEMFORGE_CATALOGUE)"
        )


class DownloadProgress:
    """A progress bar per file on a terminal, a line per quarter otherwise."""

    def __init__(self, quiet: bool):
        self.quiet, self.tty = quiet, sys.stderr.isatty()
        self._start: Dict[str, float] = {}
        self._said: Dict[str, int] = {}

    def __call__(self, name: str, done: int, total: Optional[int]) -> None:
        if self.quiet:
            return
        start = self._start.setdefault(name, time.perf_counter())
        rate = done / max(time.perf_counter() - start, 1e-6) / 1e6
        share = done / total if total else 0.0
        if self.tty:
            bar = "#" * int(24 * share) if total else ""
            size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
            print(
                f"\r{name[:32]:<32} [{bar:<24}] {100 * share:5.1f}% {size} {rate:.1f} MB/s\x1b[K",
                end="\n" if total and done >= total else "",
                file=sys.stderr,
                flush=True,
            )
        elif total and int(4 * share) > self._said.get(name, -1):
            self._said[name] = int(4 * share)
            print(f"{name}: {100 * share:.0f}% of {total / 1e6:.1f} MB", file=sys.stderr, flush=True)


def models_command(args: argparse.Namespace) -> int:
    from .apps.models import PullError, list_models, pull

    if args.action == "list":
        for row in list_models(args.catalogue):
            print(format_model_row(row))
        return 0
    try:
        result = pull(
            args.name,
            catalogue=args.catalogue,
            mirror=args.mirror,
            force=args.force,
            keep_downloads=args.keep_downloads,
            progress=DownloadProgress(args.quiet),
            on_wait=lambda: print(
                f"another stemforge is pulling {args.name}; waiting for it", file=sys.stderr, flush=True
            ),
        )
    except PullError as e:
        return fail(str(e))
    done = "already pulled" if result.already else "pulled"
    print(
        f"{args.name} {done}: {result.path} ({result.info.license}); use it as --model {args.name} "
        f"or StemSeparator({args.name!r})"
    )
    return 0


def format_model_row(row: "ModelRow") -> str:
    """A `models list` entry: name and status, then what it is, its licence, source, quality."""
    lines = [f"{row.name}  ({row.status})"]
    if row.info is not None:
        i = row.info
        latency = " / ".join(f"{row.latency[r]}" for r in sorted(row.latency))
        untrained = ", UNTRAINED test fixture" if i.untrained else ""
        lines.append(
            f"    {i.kind}{untrained}, {'/'.join(i.stems)}, {i.sample_rate} Hz, {i.channels} ch, "
            f"latency {latency} samples at 44.1 / 48 kHz, {row.size / 1e6:.1f} MB"
        )
    if row.title:
        lines.append(f"    {row.title}")
    for label, value in (
        ("licence", row.licence),
        ("source", row.source),
        ("quality", row.quality),
        ("problem", row.problem),
    ):
        if value:
            lines.append(f"    {label}: {value}")
    return "\n".join(lines)


# -- live ---------------------------------------------------------------------------------

LIVE_HELP = (
    "Run a model (default: the live preset) on an input device and play the result on "
    "an output device, buffer by buffer. --list-devices shows the device names; "
    "--simulate FILE plays a file at real-time pace instead, to check that this machine "
    "keeps up."
)


def live_arguments(p: argparse.ArgumentParser) -> None:
    out = p.add_mutually_exclusive_group()
    out.add_argument("--stem", help="play this stem (e.g. vocals: an acapella)")
    out.add_argument(
        "--gains",
        help="play the stems mixed with these gains, e.g. vocals=0 "
        "(karaoke) or vocals=1.5,drums=0.5; stems not named play at 1",
    )
    add_model_flags(p, "live")
    p.add_argument("--input", help="input device name (default: the system's default)")
    p.add_argument("--output", help="output device name (default: the system's default)")
    p.add_argument("--buffer-size", type=positive_int, default=256, help="samples per buffer (default: 256)")
    p.add_argument("--sample-rate", type=float, default=44100.0, help="the devices' sample rate in Hz (default: 44100)")
    p.add_argument("--channels", type=int, default=2, choices=[1, 2], help="channels recorded and played (default: 2)")
    p.add_argument("--queue", type=positive_int, default=3, help="output buffers queued (default: 3)")
    p.add_argument(
        "--engine",
        choices=["auto", "native", "python"],
        default="auto",
        help="native: the VST3's C++ engine (a built plugin: python build.py plugin), no GIL shared "
        "with a Python worker; python: stemforge's Python engine; auto (default): native where it is built",
    )
    p.add_argument(
        "--headroom",
        type=positive_int,
        metavar="SAMPLES",
        help="model samples the model has for each hop before its stems are due (default: one hop, "
        "256 for live, 5.8 ms): less is less latency, and more missed hops on a slow or busy machine",
    )
    p.add_argument(
        "--spare-worker",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="native engine: a second worker runs every hop too, for twice the model's CPU time and no "
        "more latency; a hop the first is late for comes from it (where one CPU at a time stalls, as on a "
        "VM). Default: on with the native engine on 2 CPUs or more",
    )
    add_threads_flag(p)
    p.add_argument("--seconds", type=positive_seconds, help="stop after this long (default: Ctrl-C)")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument(
        "--simulate", type=Path, metavar="FILE", help="no device: play FILE at real-time pace through the same loop"
    )
    p.add_argument(
        "--realtime-priority",
        action="store_true",
        help="run the loop at real-time priority (SCHED_FIFO), as DAWs run audio "
        "threads: other work on the machine then cannot delay a block",
    )


def parse_gains(text: str) -> Dict[str, float]:
    gains = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, eq, value = item.partition("=")
        try:
            gains[name.strip()] = float(value)
        except ValueError:
            raise ValueError(
                f"--gains {text!r}: write STEM=GAIN pairs separated by commas, e.g. vocals=0,drums=0.5"
            ) from None
        if not eq:
            raise ValueError(f"--gains {text!r}: {item!r} has no '=GAIN'")
    return gains


def live_command(args: argparse.Namespace) -> int:
    from .apps import live
    from .core.contract import ModelError
    from .core.processor import StemSeparator
    from .io.reading import open_audio

    if args.list_devices:
        print(live.list_devices())
        return 0
    try:
        separator = StemSeparator(
            chosen_model(args),
            stem=args.stem,
            gains=parse_gains(args.gains) if args.gains else None,
            threads=args.threads,
            realtime=True,
            headroom=args.headroom,
            engine=args.engine,
            spare_worker=args.spare_worker,
        )
        if args.simulate:
            with open_audio(args.simulate) as source:
                audio, rate = source.read_all(), source.sample_rate
            device = live.SimulatedDevice(audio, rate, args.buffer_size, args.queue, name=str(args.simulate))
        else:
            device = live.AudioStreamDevice(
                args.input, args.output, args.sample_rate, args.buffer_size, args.channels, args.queue
            )
    except (ModelError, ValueError, OSError, RuntimeError) as e:
        fail(str(e))
        if not args.simulate and not args.list_devices:
            fail("--list-devices shows the devices; --simulate FILE runs without one")
        return 1
    try:
        separator.prepare(device.sample_rate, device.channels, block_size=device.buffer_size)
    except (ModelError, ValueError, RuntimeError) as e:  # e.g. the native engine refusing the model
        return fail(str(e))
    ms = 1000 * separator.latency_samples / device.sample_rate
    buffers = device.buffer_size * (1 + args.queue)
    print(
        f"{separator!r}, {separator.engine} engine{' and a spare worker' if separator.spare_worker else ''}: adds {separator.latency_samples} samples ({ms:.1f} ms) at "
        f"{device.sample_rate:g} Hz, plus {buffers} samples ({1000 * buffers / device.sample_rate:.1f} ms) "
        "of device buffers; Ctrl-C stops",
        flush=True,
    )
    if separator.engine == "python" and args.engine == "auto":
        # Said where the cause is known: auto fell back because the C++ engine cannot run here.
        from .core.native import unavailable

        print(
            f"note: Python's engine plays this, as the plugin's C++ engine cannot run here ({unavailable()}). "
            "Its audio thread shares the GIL with the model's worker: each buffer takes several times "
            "the C++ engine's time and varies more, so a busy machine misses hops sooner",
            flush=True,
        )
    if args.realtime_priority:
        print(live.raise_priority(), flush=True)
    last = {"underruns": 0, "late": 0, "misses": 0}

    def report(stats) -> None:
        now = {"underruns": stats.underruns, "late": stats.late_blocks, "misses": stats.misses}
        if now != last:
            print(
                f"  {stats.blocks * stats.buffer_size / stats.sample_rate:7.1f} s: "
                f"{stats.underruns} under-run(s), {stats.late_blocks} late block(s), "
                f"{stats.misses} missed hop(s) so far",
                flush=True,
            )
            last.update(now)

    with stop_on_signals() as stop:
        try:
            stats = live.run_live(separator, device, seconds=args.seconds, stop=stop, report=report)
        except (ValueError, RuntimeError) as e:  # e.g. a device that delivers NaN
            return fail(str(e))
    print(stats.summary())
    if advice := live.miss_advice(stats, separator):
        print(advice)
    return 0 if stats.underruns == 0 else 3


# -- sections -----------------------------------------------------------------------------

SECTIONS_HELP = (
    "Find where someone sings (not talks, not silence, not music alone) in a long "
    "recording, and write the songs as labels, CSV, a CUE sheet, DAW markers, and "
    "with --cut as files. Streams: memory does not grow with the recording's length."
)


def sections_arguments(p: argparse.ArgumentParser) -> None:
    from .apps.sections import OUTPUTS, RULE_HELP, Rules

    p.add_argument("input", type=Path, help=f"an audio file ({AUDIO_KINDS})")
    p.add_argument("-o", "--output", type=Path, default=Path("sections"), help="output folder (default: ./sections)")
    add_model_flags(p, "live")
    p.add_argument(
        "--write", default="labels,csv,cue", metavar=",".join(OUTPUTS), help="what to write (default: %(default)s)"
    )
    p.add_argument("--cut", action="store_true", help="also write each song as its own file")
    add_output_format_flags(p, "--cut's ")
    for field, help_text in RULE_HELP.items():
        p.add_argument(
            f"--{field.replace('_', '-')}",
            type=float,
            default=getattr(Rules(), field),
            help=f"{help_text} (default: %(default)s)",
        )
    add_threads_flag(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def sections_command(args: argparse.Namespace) -> int:
    from .apps.sections import RULE_HELP, Rules, split_file
    from .core.contract import ModelError

    progress = Progress.for_terminal(args.quiet)
    start = time.perf_counter()

    def report(done: float, total: float) -> None:
        progress.update(args.input, done, total, time.perf_counter() - start)

    try:
        rules = Rules(**{f: getattr(args, f) for f in RULE_HELP})
        outputs = [w.strip() for w in args.write.split(",") if w.strip()]
        with stop_on_signals() as stop:
            songs, written = split_file(
                args.input,
                args.output,
                chosen_model(args),
                rules,
                outputs,
                args.cut,
                args.format,
                args.bit_depth,
                args.threads,
                report,
                stop,
                warn=lambda text: progress.say(f"stemforge: warning: {args.input}: {text}", error=True),
            )
    except Interrupted:
        return fail("interrupted; nothing was written but whole files", 130)
    except (ExportError, ModelError, ValueError, OSError, RuntimeError) as e:
        return fail(("\n" if progress.mode == "bar" else "") + str(e))
    if progress.mode == "bar":
        print()
    for i, song in enumerate(songs, 1):
        print(f"song {i}: {song.start:8.1f} s - {song.end:8.1f} s ({song.duration / 60:.1f} min)")
    print(f"{len(songs)} song(s) in {args.input.name}; wrote {len(written)} file(s) to {args.output}")
    return 0


# -- evaluate -----------------------------------------------------------------------------

EVALUATE_HELP = (
    "Compare ESTIMATE_DIR with REFERENCE_DIR: folders of <stem>.wav (one track), or "
    "folders of such track folders with the same names. The mixture is "
    "REFERENCE/mixture.wav if present, else the sum of the stems."
)


def evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "reference",
        type=Path,
        metavar="REFERENCE_DIR",
        help="the true stems: <stem>.wav files, or folders of them per track",
    )
    p.add_argument("estimate", type=Path, metavar="ESTIMATE_DIR", help="the estimated stems, laid out as REFERENCE_DIR")
    p.add_argument("--json", metavar="PATH", help="also write the scores as JSON ('-': stdout only)")
    p.add_argument("--global-only", action="store_true", help="only global SDR and NSDR (fast: no BSS Eval)")


def evaluate_command(args: argparse.Namespace) -> int:
    from .apps.evaluate import EvaluationError, evaluate_folders, format_table, report_json, summary
    from .io.writing import write_text

    quiet = args.json == "-"
    try:
        results = evaluate_folders(
            args.reference,
            args.estimate,
            not args.global_only,
            None if quiet else lambda name, scores: print(format_table(scores, name)),
        )
    except EvaluationError as e:
        return fail(str(e))
    text = report_json(results)
    if quiet:
        print(text)
        return 0
    if len(results) > 1:
        print(format_table(summary(results), f"summary over {len(results)} tracks"))
    if args.json:
        write_text(Path(args.json), text)
    return 0


# -- the registry -------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: Optional[str] = None


COMMANDS: List[Command] = [
    Command("separate", "export the stems of audio files", separate_arguments, separate_command, SEPARATE_HELP),
    Command(
        "render", "run a render plan (TOML): inputs, a chain, outputs", render_arguments, render_command, RENDER_HELP
    ),
    Command(
        "import-model",
        "turn a Demucs or Open-Unmix checkpoint into a stemforge model file",
        import_arguments,
        import_command,
    ),
    Command(
        "models",
        "list models, and pull published ones (Demucs, Open-Unmix) by name",
        models_arguments,
        models_command,
        MODELS_HELP,
    ),
    Command("live", "separate an audio interface's input in real time", live_arguments, live_command, LIVE_HELP),
    Command(
        "sections",
        "find the songs in a long recording (a singing stream)",
        sections_arguments,
        sections_command,
        SECTIONS_HELP,
    ),
    Command(
        "evaluate",
        "SDR, SIR, SAR, ISR, global SDR and NSDR of estimated stems",
        evaluate_arguments,
        evaluate_command,
        EVALUATE_HELP,
    ),
]


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """Every command with its arguments; with `only`, the arguments of that command alone
    (the others keep their name and help): a command's arguments import what the command
    needs (torch for the model flags), which `stemforge --help` should not wait for."""
    parser = argparse.ArgumentParser(prog="stemforge", description="Split music into stems.")
    parser.add_argument("--version", action="version", version=f"stemforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for c in COMMANDS:
        p = sub.add_parser(
            c.name,
            help=c.help,
            description=c.description or c.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if only is None or c.name == only:
            c.arguments(p)
        p.set_defaults(run=c.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # the command is the first word that is not an option (the top level has only options
    # without values: --help, --version)
    command = next((a for a in argv if not a.startswith("-")), "")
    try:
        args = build_parser(only=command).parse_args(argv)
        return args.run(args)
    except KeyboardInterrupt:  # Ctrl-C outside a batch (loading torch or a model, a download)
        print("stemforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
