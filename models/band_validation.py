"""The real-band validation set: three MUSDB18 test songs with their four true stems.

VALIDATION ONLY. These excerpts are measured (bench/quality.py's "real band" section,
train.py's validation log) and used to choose between runs; they are never trained on,
never part of a training source (models/real.py, models/corpus.py) and their audio is
never committed to this repository. MUSDB18 audio is for research use. Every other form
of MUSDB18/MUSDB18-HQ stays out of the project entirely.

Source: github:sigsep/share at commit 6df8c29 (`public/tracks/<song>/{drums,bass,other,
vocals}.m4a`, AAC, 44.1 kHz stereo; the files were deleted from that repository's HEAD, so
the commit is read, not a checkout). The mixture is the sum of the four stems. The git
repository is expected where models/real.py expects every GitHub source:
$STEMFORGE_SOURCES/sigsep+share (default ~/.cache/stemforge/sources/sigsep+share).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from models.sources import SOURCES_DIR, decode_audio, to_stereo_44k

REPO = "sigsep/share"
COMMIT = "6df8c29f3b4a218300ebfc816ff9663916f1f81c"
TRACKS = "public/tracks"
STEMS = ("drums", "bass", "other", "vocals")

Song = Tuple[str, np.ndarray]  # name, stems (4, 2, n) float32 at 44.1 kHz


class MissingValidationSet(RuntimeError):
    """The sigsep/share repository (with commit 6df8c29) is not where it is expected."""


def repo_dir() -> Path:
    path = SOURCES_DIR / REPO.replace("/", "+")
    how = (
        f"git clone https://github.com/{REPO} {path} (a full clone: the tracks exist only "
        f"at commit {COMMIT[:7]}, not at HEAD)"
    )
    if not path.exists():
        raise MissingValidationSet(f"the real-band validation set is missing: {how}")
    ok = subprocess.run(
        ["git", "--git-dir", str(_git_dir(path)), "cat-file", "-e", f"{COMMIT}^{{commit}}"], capture_output=True
    )
    if ok.returncode != 0:
        raise MissingValidationSet(f"{path} lacks commit {COMMIT[:7]}: {how}")
    return path


def _git_dir(path: Path) -> Path:
    return path / ".git" if (path / ".git").exists() else path


def _git(path: Path, *args: str) -> bytes:
    return subprocess.run(["git", "--git-dir", str(_git_dir(path)), *args], check=True, capture_output=True).stdout


def songs() -> List[Song]:
    """Every song of the set, its stems decoded and trimmed to a common length."""
    root = repo_dir()
    listing = _git(root, "ls-tree", "-r", "-z", COMMIT, TRACKS).decode().split("\0")
    blobs: Dict[str, Dict[str, str]] = {}
    for entry in filter(None, listing):
        meta, path = entry.split("\t", 1)
        song, _, file = path[len(TRACKS) + 1 :].rpartition("/")
        stem = file.rsplit(".", 1)[0]
        if stem in STEMS:
            blobs.setdefault(song, {})[stem] = meta.split()[2]
    out = []
    for song in sorted(blobs):
        if set(blobs[song]) != set(STEMS):
            continue
        stems = [to_stereo_44k(*decode_audio(_git(root, "cat-file", "blob", blobs[song][s]), ".m4a")) for s in STEMS]
        n = min(x.shape[1] for x in stems)
        out.append((song, np.stack([x[:, :n] for x in stems])))
    if not out:
        raise MissingValidationSet(f"no songs with four stems under {TRACKS} at {COMMIT[:7]} in {root}")
    return out
