"""Batch stem export: ``stemforge.export(inputs, output, ...)``, what ``stemforge separate`` runs.

>>> report = stemforge.export(["album/"], "stems", recursive=True, two_stems="vocals",
...                           format="flac")                          # doctest: +SKIP
>>> [p.name for p in report.written]                                  # doctest: +SKIP
['vocals.flac', 'no_vocals.flac', ...]

Each input streams from disk through a `StemSplitter` in blocks, so memory does
not grow with the file's length. Everything that can be checked is checked
before any audio is written: options, the model and its stems, the output
folder, and every target name (no two inputs may write the same file, and no
output may be an input). Every output is written to a hidden partial file and
renamed when complete: an interrupted run leaves no partial stem, and a rerun
skips what is complete and writes only what is missing (a session added later,
or one a kill prevented).
"""

from __future__ import annotations

import string
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

from ..core.loading import Model, load_model
from ..core.processor import StemSplitter
from ..errors import ExportError
from ..io.formats import AUDIO_EXTENSIONS, check_format
from ..io.reading import find_inputs, open_audio
from ..io.sessions import FORMATS as SESSION_KINDS
from ..io.sessions import SessionTrack, write_session
from ..io.writing import (
    DEFAULT_TEMPLATE,
    StemWriter,
    check_output_folder,
    check_targets,
    check_template,
    partial_path,
    remove_partials,
    target_path,
    template_outputs,
)
from .batch import BatchReport, FileResult, Reporter, check_counts, run_files, torch_threads_for_batch

PathLike = Union[str, Path]


def output_gains(
    model: Model, stems: Optional[Sequence[str]], two_stems: Optional[str]
) -> Tuple[List[str], Dict[str, Dict[str, float]]]:
    """The model stems to write and the extra weighted sums (``no_STEM``), checked once."""
    if stems is not None and two_stems is not None:
        raise ExportError("give stems or two_stems, not both")
    if two_stems is not None:
        if two_stems not in model.stems:
            raise ExportError(f"--two-stems {two_stems}: this model has {', '.join(model.stems)}")
        return [two_stems], {f"no_{two_stems}": {two_stems: 0.0}}
    if stems is not None and not list(stems):  # not "all": that is None
        raise ExportError(
            f"stems is empty: name at least one stem, or leave it out (None) for all of {', '.join(model.stems)}"
        )
    wanted = list(stems) if stems else list(model.stems)
    unknown = [s for s in wanted if s not in model.stems]
    if unknown:
        raise ExportError(f"--stems {','.join(unknown)}: this model has {', '.join(model.stems)}")
    return wanted, {}


def check_options(
    format: str,
    bit_depth: Optional[int],
    filename: str,
    sessions: Sequence[str],
    jobs: int = 1,
    threads: Optional[int] = None,
    workers: Optional[int] = None,
) -> Tuple[Optional[int], List[str]]:
    """The options that need no model, checked together (the command line calls this before
    the model loads); returns the bit depth to write and the session kinds."""
    bit_depth = check_format(format, bit_depth)
    check_template(filename, fmt=format)
    kinds = [sessions] if isinstance(sessions, str) else list(sessions)  # one, not its letters
    unknown = [k for k in kinds if k not in SESSION_KINDS]
    if unknown:
        raise ExportError(f"unknown --session {', '.join(unknown)}; choose from {', '.join(SESSION_KINDS)}")
    check_counts(jobs, threads)
    if workers is not None:
        check_counts(workers, None, name="workers")
    return bit_depth, kinds


@dataclass
class _Plan:
    """One input's targets, decided before any audio is written."""

    path: Path
    index: int
    stems: Dict[str, Path]
    sessions: Dict[str, Path]

    @property
    def targets(self) -> List[Path]:
        return list(self.stems.values()) + list(self.sessions.values())


@dataclass(frozen=True)
class FileJob:
    """One input's export, all but the loaded model: what `export_file` needs. A local run
    calls it in a thread; a cluster worker receives it pickled (see apps.cluster)."""

    plan: _Plan
    names: List[str]  # the model stems to write
    extra: Dict[str, Dict[str, float]]  # weighted sums to write (no_STEM)
    bit_depth: Optional[int]
    overwrite: bool
    dry_run: bool

    def for_every_node(self) -> "FileJob":
        """The job with an absolute input path: another process, on another node, has
        another current folder (the targets are absolute already). `absolute`, not
        `resolve`: a link's own name is the track's name, as in a local run."""
        return replace(self, plan=replace(self.plan, path=self.plan.path.absolute()))

    def remove_partials(self) -> None:
        """What a worker killed mid-file leaves: its hidden partial files, and the folder
        made for them if nothing else is in it (as a local run's abort does)."""
        for target in self.plan.targets:
            partial_path(target).unlink(missing_ok=True)
        for folder in {t.parent for t in self.plan.targets}:
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone): keep it
                pass


def export(
    inputs: Union[PathLike, Iterable[PathLike]],
    output: PathLike = "stems",
    *,
    model: Union[Model, str, None] = None,
    stems: Optional[Sequence[str]] = None,
    two_stems: Optional[str] = None,
    format: str = "wav",
    bit_depth: Optional[int] = None,
    filename: str = DEFAULT_TEMPLATE,
    sessions: Sequence[str] = (),
    recursive: bool = False,
    overwrite: bool = False,
    dry_run: bool = False,
    jobs: int = 1,
    threads: Optional[int] = None,
    preset_label: Optional[str] = None,
    reporter: Optional[Reporter] = None,
    stop: Optional[threading.Event] = None,
    cluster: Optional[str] = None,
    workers: Optional[int] = None,
) -> BatchReport:
    """Export the stems of `inputs` (files, folders, glob patterns) into `output`.

    model: a preset name, a model file or a loaded Model (default: the studio preset).
    stems: the stems to write, a name or a list (default: all); two_stems: STEM and
        no_STEM instead.
    format, bit_depth: see `stemforge.io.formats.FORMATS` (default bit depth per format).
    filename: the name template under `output` (see `stemforge.io.writing`).
    sessions: DAW sessions to write beside the stems: "dawproject", "reaper" or both
        in a list.
    jobs: files at once; threads: torch intra-op threads for the batch (default 1
        per file, measured fastest; torch's setting is restored afterwards).
    preset_label: what {preset} in `filename` says (default: the model's name).
    reporter: hears each file's start, progress and result (see apps.batch.Reporter).
    stop: set it to stop cleanly (no partial file is left).
    cluster: a Ray cluster's address ("auto", "HOST:PORT", "ray://HOST:PORT") to run the
        files on, one actor per worker process holding the model (see apps.cluster);
        inputs and output must be at the same paths on every node (a shared mount).
        `jobs` is then ignored; workers: actors (default: one per `threads` CPUs the
        cluster has).

    Raises ExportError (or ModelError) before any audio is written when the request
    cannot be met; a file that cannot be read is a "failed" entry in the report.
    """
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    stems = [stems] if isinstance(stems, str) else stems  # one stem's name, not its letters
    out = Path(output)
    bit_depth, kinds = check_options(format, bit_depth, filename, sessions, jobs, threads, workers)
    check_output_folder(out)
    model = model if isinstance(model, Model) else load_model(model)
    names, extra = output_gains(model, stems, two_stems)
    label = preset_label or model.name

    def earlier_outputs(found: List[Path]) -> Set[Path]:  # an output folder that holds inputs
        # whichever stems the earlier run wrote
        every = list(model.stems) + [f"no_{s}" for s in model.stems]
        return template_outputs(found, out, filename, every, ext=format, model=model.name, preset=label)

    files = find_inputs([str(i) for i in items], recursive, exclude=[out], outputs_of=earlier_outputs)
    if not files:
        raise ExportError("no audio files found in " + " ".join(map(str, items)))
    plans = []
    for index, path in enumerate(files):
        targets = {
            s: target_path(
                out, filename, track=path.stem, stem=s, ext=format, model=model.name, preset=label, index=index + 1
            )
            for s in names + list(extra)
        }
        if len(set(targets.values())) < len(targets):
            raise ExportError(f"--filename {filename!r} gives several stems the same file")
        folder = next(iter(targets.values())).parent
        plans.append(_Plan(path, index, targets, {k: folder / f"{path.stem}{SESSION_KINDS[k]}" for k in kinds}))
    # with {index} in the name, no two inputs share a stem file: what they share is a session
    # (named by track alone, in the first stem's folder)
    has_index = "index" in {f for _, f, _, _ in string.Formatter().parse(filename)}
    check_targets(
        {p.path: p.targets for p in plans},
        files,
        hint=(
            "sessions are named by track, in the first stem's folder: give each input its own folder in --filename"
            if has_index
            else "put {index} in --filename"
        )
        + ', e.g. "{index:02d}-{track}/{stem}.{ext}"',
    )
    file_jobs = [FileJob(p, names, extra, bit_depth, overwrite, dry_run) for p in plans]
    if cluster is not None and not dry_run:  # a dry run reads headers only: no cluster needed
        from .cluster import run_on_cluster

        return run_on_cluster(
            cluster,
            [j.for_every_node() for j in file_jobs],
            files,
            model,
            export_file,
            FileJob.remove_partials,
            workers=workers,
            threads=threads,
            stop=stop,
            reporter=reporter,
        )

    def work(index: int, path: Path) -> FileResult:
        return export_file(file_jobs[index], model, stop, reporter or Reporter())

    with torch_threads_for_batch(threads):
        return run_files(files, work, jobs, stop, reporter)


def _missing(targets: Iterable[Path], overwrite: bool) -> List[Path]:
    return [t for t in targets if overwrite or not t.exists()]


def export_file(
    job: FileJob, model: Model, stop: Optional[threading.Event] = None, reporter: Optional[Reporter] = None
) -> FileResult:
    """Export one input: file -> reader -> StemSplitter (resampler, block engine, model)
    -> stems -> StemWriter (partial files, renamed when complete) -> sessions. The one
    per-file function: local runs and cluster workers both call it."""
    plan, names, extra, bit_depth = job.plan, job.names, job.extra, job.bit_depth
    overwrite, dry_run, reporter = job.overwrite, job.dry_run, reporter or Reporter()
    path = plan.path
    stems_to_do = bool(_missing(plan.stems.values(), overwrite))
    sessions_to_do = {k: t for k, t in plan.sessions.items() if t in _missing([t], overwrite)}
    if stems_to_do:
        sessions_to_do = dict(plan.sessions)  # new stems: their sessions are written anew
    if not dry_run:  # leftovers of a run killed before it could clean up, in any format
        for t in plan.stems.values():
            remove_partials(t, AUDIO_EXTENSIONS)
        folder = next(iter(plan.stems.values())).parent  # where the track's sessions go
        remove_partials(folder / f"{path.stem}.session", SESSION_KINDS.values())
    if not stems_to_do and not sessions_to_do:
        return FileResult(path, "skipped", plan.targets, "complete, skipped (overwrite to redo)")
    todo = (list(plan.stems.values()) if stems_to_do else []) + list(sessions_to_do.values())
    with open_audio(path) as source:
        if dry_run:
            return FileResult(path, "planned", todo, audio_seconds=source.seconds)
        start = time.perf_counter()
        written: List[Path] = []
        warnings: List[str] = []
        if stems_to_do:
            splitter = StemSplitter(model, source.sample_rate, source.channels, names, outputs=extra)
            if splitter.needs_track_stats:
                splitter.set_track_stats(source.track_stats(stop))
            with StemWriter(
                plan.stems, source.sample_rate, source.channels, bit_depth, stage=f"the model {model.name}"
            ) as writer:
                for block in source.blocks(stop):
                    writer.write(splitter.push(block))
                    reporter.update(
                        path, source.file.tell() / source.sample_rate, source.seconds, time.perf_counter() - start
                    )
                writer.write(splitter.flush())
                written += writer.commit()
                warnings = [writer.clipping()] if writer.clipping() else []
        tracks = [SessionTrack(path.stem, path, muted=True)] + [SessionTrack(s, t) for s, t in plan.stems.items()]
        for kind, target in sessions_to_do.items():
            written.append(
                write_session(kind, target, tracks, source.sample_rate, source.channels, source.frames, title=path.stem)
            )
        return FileResult(
            path, "done", written, seconds=time.perf_counter() - start, audio_seconds=source.seconds, warnings=warnings
        )
