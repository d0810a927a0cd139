"""The command line: ``stemforge separate FILE... -o DIR``.

Each input streams from disk through a `StemSplitter` in blocks, so memory
does not grow with the file's length; each stem is written to a hidden
temporary file and renamed only when complete, so an interrupted run leaves
no partial stem. A file that cannot be read is reported and skipped; the
exit status says whether every file was exported.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
from pedalboard.io import AudioFile

from .model import ModelError, load_model
from .processor import StemSplitter
from .session import FORMATS, SessionTrack, write_session

READ_BLOCK = 1 << 16


def _stem_paths(track: Path, out_dir: Path, stems: List[str]) -> dict:
    folder = out_dir / track.stem
    return {s: folder / f"{s}.wav" for s in stems}


def separate_file(path: Path, out_dir: Path, model, stems: Optional[List[str]], overwrite: bool,
                  threads: Optional[int], sessions: List[str] = ()) -> List[Path]:
    """Export the stems of one file (and DAW sessions for them); returns the files written."""
    with AudioFile(str(path)) as f:
        rate, channels, frames = int(f.samplerate), f.num_channels, f.frames
        if frames == 0:
            raise ValueError("the file holds no audio")
        splitter = StemSplitter(model, rate, channels, stems, threads=threads)
        targets = _stem_paths(path, out_dir, splitter.stems)
        if path.resolve() in {t.resolve() for t in targets.values()}:
            raise ValueError("an output would overwrite the input; choose another output folder")
        if not overwrite and all(t.exists() for t in targets.values()):
            return []
        next(iter(targets.values())).parent.mkdir(parents=True, exist_ok=True)
        partial = {s: t.with_name(f".{t.stem}.partial{t.suffix}") for s, t in targets.items()}
        writers = {s: AudioFile(str(p), "w", rate, channels, bit_depth=32) for s, p in partial.items()}
        try:
            def write(parts: dict) -> None:
                for s, audio in parts.items():
                    if audio.shape[1]:
                        writers[s].write(audio)
            while f.tell() < frames:
                write(splitter.push(f.read(READ_BLOCK)))
            write(splitter.flush())
        except BaseException:
            for w in writers.values():
                w.close()
            for p in partial.values():
                p.unlink(missing_ok=True)
            raise
        for w in writers.values():
            w.close()
    for s, t in targets.items():
        os.replace(partial[s], t)
    written = list(targets.values())
    folder = written[0].parent
    tracks = [SessionTrack(path.stem, path, muted=True)] + [SessionTrack(s, t) for s, t in targets.items()]
    for kind in sessions:
        written.append(write_session(kind, folder / f"{path.stem}{FORMATS[kind]}", tracks, rate,
                                     channels, frames, title=path.stem))
    return written


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="stemforge", description="Split music into stems.")
    sub = parser.add_subparsers(dest="command", required=True)
    sep = sub.add_parser("separate", help="export the stems of audio files as WAV (32-bit float)")
    sep.add_argument("inputs", nargs="+", type=Path, help="audio files (wav, flac, aiff, ogg, mp3)")
    sep.add_argument("-o", "--output", type=Path, default=Path("stems"),
                     help="output folder; each track gets a subfolder (default: ./stems)")
    sep.add_argument("-m", "--model", default=None,
                     help="model name or .ts file (default: the bundled default model)")
    sep.add_argument("--stems", default=None, help="comma-separated stems to export (default: all)")
    sep.add_argument("--overwrite", action="store_true", help="replace stems that already exist")
    sep.add_argument("--session", default="", metavar="dawproject,reaper",
                     help="also write DAW sessions with the stems beside the muted original")
    sep.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)

    try:
        model = load_model(args.model)
    except ModelError as e:
        print(f"stemforge: {e}", file=sys.stderr)
        return 2
    if model.info.untrained:
        print(f"stemforge: {model.name} is an UNTRAINED test fixture: its stems are not a "
              "separation (they do sum back to the mix)", file=sys.stderr)
    stems = args.stems.split(",") if args.stems else None
    sessions = [k for k in args.session.split(",") if k]
    unknown = [k for k in sessions if k not in FORMATS]
    if unknown:
        print(f"stemforge: unknown --session {', '.join(unknown)}; choose from {', '.join(FORMATS)}",
              file=sys.stderr)
        return 2
    failed = 0
    for path in args.inputs:
        start = time.perf_counter()
        try:
            written = separate_file(path, args.output, model, stems, args.overwrite, args.threads,
                                    sessions)
        except KeyboardInterrupt:
            print("stemforge: interrupted; no partial stem was left", file=sys.stderr)
            return 130
        except (OSError, ValueError, RuntimeError) as e:
            failed += 1
            print(f"stemforge: skipped {path}: {e}", file=sys.stderr)
            continue
        took = time.perf_counter() - start
        if written:
            print(f"{path} -> {written[0].parent}/ ({', '.join(p.name for p in written)}) "
                  f"in {took:.1f} s")
        else:
            print(f"{path}: stems exist, skipped (use --overwrite)")
    if failed:
        print(f"stemforge: {failed} of {len(args.inputs)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
