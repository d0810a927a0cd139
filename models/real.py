"""Real recordings for training and for the real held-out set.

    python build.py real          # decode every source into <cache>/real/{train,test}/

The rendered corpus (corpus.py) has no real singing; these sources do. Each
source is a table entry: where it is expected, its licence, what kind of
material it is and which groups (singers, songs, voice banks) are held out.
`python build.py real` decodes every item to 44.1 kHz stereo and writes
`<cache>/real/<split>/<source>-<id>.npz` (int16 stems + scale, like corpus
clips, plus `info` JSON); a group in `test_groups` goes to `test`, never to
`train`, so the real held-out set is singer- and song-disjoint from training.

Items carry whichever stems the source knows: a multitrack has drums, bass,
other, vocals (a missing one is silence); a karaoke pair has vocals and
`accompaniment` (drums + bass + other, unsplit); a solo voice has vocals only;
an instrumental has accompaniment only. The trainer's remixer supervises each
stem it knows and the sum of the instrumental stems where only their sum is
known (train.py).

GitHub sources are expected as git repositories (a clone or a bare mirror)
under $STEMFORGE_SOURCES (default ~/.cache/stemforge/sources), named
`<owner>+<name>`: `git clone https://github.com/OWNER/NAME
~/.cache/stemforge/sources/OWNER+NAME`. Debian sources are read from the
installed package. A missing source stops the build with the command that
fetches it (`--skip-missing` builds what is there and names what is not).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from models.corpus import CORPUS, RATE
from models.real_more import SOURCES_MORE
from models.sources import KNOWN_STEMS, Item, MissingSource, Source, decode_audio, repo_dir, repo_files, to_stereo_44k

REAL = CORPUS.parent / "real"


# ---------------------------------------------------------------- MIR-1K
# 1000 karaoke clips of 110 Chinese pop songs sung by 19 amateur singers,
# 16 kHz, left channel the accompaniment, right channel the voice.
MIR1K_TEST_SINGERS = ("abjones", "jmzen", "titon")


def mir1k_items() -> Iterator[Item]:
    root = repo_dir("andabi/music-source-separation")
    for path, read in repo_files(root, "dataset/mir-1k/Wavfile", (".wav",)):
        x, rate = decode_audio(read(), ".wav")
        name = Path(path).stem
        accompaniment = to_stereo_44k(x[0:1], rate)
        vocals = to_stereo_44k(x[1:2], rate)
        yield Item(name, name.split("_")[0], {"vocals": vocals, "accompaniment": accompaniment}, rate)


# ---------------------------------------------------------------- Everything is Free
# Seven electronic-pop songs by Software-Entwicklungskit released as stems under
# CC0, with real lead and backing vocals. Stem names map onto the four stems;
# the snapshot here lacks the files of 4 MiB or more, so a song's mix is the sum
# of the stems that are present (the trainer and the benchmark only ever see
# that sum, never the published master).
EIF_DRUMS = re.compile(r"KICK|SNARE|HH|HAT|CLAP|CRASH|CYMBAL|TOM|BEAT|DRUM|PERC|K & SN|TOPS|BREAKBEAT")
EIF_BASS = re.compile(r"BASS")
EIF_VOCALS = re.compile(r"VOX")
EIF_TEST_SONGS = ("3.Sodium",)


def eif_stem(name: str) -> str:
    label = name.split("_Stem_", 1)[1].upper()
    if EIF_VOCALS.search(label):
        return "vocals"
    if EIF_BASS.search(label):
        return "bass"
    if EIF_DRUMS.search(label):
        return "drums"
    return "other"


def eif_items() -> Iterator[Item]:
    root = repo_dir("ichbinsoftware/everythingisfree")
    songs: Dict[str, List[Tuple[str, Callable[[], bytes]]]] = {}
    for path, read in repo_files(root, "src", (".m4a",)):
        if "_Stem_" in path:
            songs.setdefault(path.split("/")[1], []).append((path, read))
    for song, files in sorted(songs.items()):
        stems: Dict[str, np.ndarray] = {}
        for path, read in files:
            try:
                data = read()
            except subprocess.CalledProcessError:
                eif_items.missing.append(path)  # type: ignore[attr-defined]
                continue
            x = to_stereo_44k(*decode_audio(data, ".m4a"))
            key = eif_stem(Path(path).stem)
            if key in stems:
                n = max(stems[key].shape[1], x.shape[1])
                stems[key] = np.pad(stems[key], ((0, 0), (0, n - stems[key].shape[1]))) + np.pad(
                    x, ((0, 0), (0, n - x.shape[1]))
                )
            else:
                stems[key] = x
        if stems:
            n = max(v.shape[1] for v in stems.values())
            stems = {k: np.pad(v, ((0, 0), (0, n - v.shape[1]))) for k, v in stems.items()}
            yield Item(re.sub(r"\W", "", song), song, stems, 48000)


eif_items.missing = []  # type: ignore[attr-defined]

# The one registry of training sources: these two, then models/real_more.py's.
SOURCES: List[Source] = [
    Source(
        "mir1k",
        "github:andabi/music-source-separation (dataset/mir-1k/Wavfile; the same files are in "
        "posenhuang/deeplearningsourceseparation)",
        "research use (MIR-1K, Hsu & Jang, 2010)",
        "karaoke",
        mir1k_items,
        MIR1K_TEST_SINGERS,
        "real singing over real accompaniment; 3 singers held out",
    ),
    Source(
        "eif",
        "github:ichbinsoftware/everythingisfree (src/N.Name/*_Stem_*.m4a)",
        "CC0 1.0",
        "multitrack",
        eif_items,
        EIF_TEST_SONGS,
        "real vocals and electronic stems, mapped by stem name; one song held out",
    ),
    *SOURCES_MORE,
]


def write_item(path: Path, item: Item, source: Source) -> None:
    peak = max(float(np.abs(v).max()) for v in item.stems.values()) or 1.0
    arrays = {k: np.round(v / peak * 32767).astype(np.int16) for k, v in item.stems.items()}
    info = dict(
        source=source.name,
        id=item.id,
        group=item.group,
        rate=item.rate,
        kind=source.kind,
        licence=source.licence,
        seconds=round(next(iter(item.stems.values())).shape[1] / RATE, 2),
    )
    tmp = path.with_suffix(".partial.npz")
    np.savez(tmp, scale=np.float32(peak), info=json.dumps(info), **arrays)
    tmp.replace(path)


def load_real(path: Path) -> Tuple[Dict[str, np.ndarray], dict]:
    with np.load(path) as z:
        scale = float(z["scale"]) / 32767
        stems = {k: z[k].astype(np.float32) * scale for k in KNOWN_STEMS if k in z.files}
        return stems, json.loads(str(z["info"]))


def build_real(names: Optional[List[str]] = None, skip_missing: bool = False) -> None:
    """Decode every source's items into REAL/<split>/; existing items are kept."""
    missing = []
    for source in SOURCES:
        if names and source.name not in names:
            continue
        counts = {"train": [0, 0.0], "test": [0, 0.0]}
        try:
            for item in source.items():
                split = "test" if item.group in source.test_groups else "train"
                out = REAL / split / f"{source.name}-{item.id}.npz"
                out.parent.mkdir(parents=True, exist_ok=True)
                if not out.exists():
                    write_item(out, item, source)
                counts[split][0] += 1
                counts[split][1] += next(iter(item.stems.values())).shape[1] / RATE / 60
        except MissingSource as e:
            if not skip_missing:
                raise SystemExit(f"source {source.name}: {e}")
            missing.append(f"{source.name}: {e}")
            continue
        print(
            f"{source.name}: train {counts['train'][0]} items {counts['train'][1]:.1f} min, "
            f"test {counts['test'][0]} items {counts['test'][1]:.1f} min ({source.licence})",
            flush=True,
        )
    if eif_items.missing:  # type: ignore[attr-defined]
        print(f"eif: {len(eif_items.missing)} stem files absent from the source (left out of their songs)")  # type: ignore[attr-defined]
    for line in missing:
        print("MISSING", line)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="build.py real", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sources", nargs="*", help="only these sources")
    parser.add_argument("--skip-missing", action="store_true", help="build the sources that are present")
    args = parser.parse_args(argv)
    build_real(args.sources, args.skip_missing)


if __name__ == "__main__":
    main()
