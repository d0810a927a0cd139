"""More real recordings for real.py: solo singing and vocal-free accompaniment.

    python -m models.real_more            # decode every source, print items / minutes / groups / missing
    python -m models.real_more --screen   # re-run the vocal screen of the accompaniment tracks

real.py's registry `SOURCES` ends with `SOURCES_MORE`; each entry follows the `Source` /
`Item` contract of models/sources.py (stems float32 (2, n) at 44.1 kHz, mono duplicated).

| source | where | licence (terms, summarised) | minutes | kind | held out | how used |
| --- | --- | --- | --- | --- | --- | --- |
| `pjs` | github:justln1113/TEST (`PJS/PJS_corpus_ver1.1/wav/*.wav`, a copy of the PJS corpus v1.1) | CC BY-SA 4.0 ("All the data in the corpus is licensed with CC BY-SA 4.0", corpus README, read in the repo); credit Koguchi & Takamichi | 25.8 (98 items of 6.5-26.7 s; 2 of 100 files, >= 4 MiB, absent from the snapshot) | vocals | none (one singer) | one Japanese female singer, 100 short composed songs, 48 kHz / 24-bit, dry studio; each song one item |
| `utau` | github:kgs233/UTAU-Yuki, github:oxygen-dioxide/scottpoid-ja, github:oxygen-dioxide/hitsuboku-kumi-chn | yuki: public-domain dedication ("公共领域许可证" V3.2: all copyright waived "for any purpose", LICENCE); scottpoid: "You are free to use this voicebank commercially", "free to edit the audio files ... in any way", "permitted to use the source audio ... outside of singing synthesizers" (license.md; credit the name SCOTTPOID); kumi: commercial use, editing of audio samples and porting to other synthesis software "allowed without permission" (license.md; keep the name "Hitsuboku Kumi", credit Cubialpha, link cubialpha.wixsite.com/koomstar, say it was edited) | 92.0: yuki 16.5 (all 267 files), scottpoid 45.1 (cap 45), kumi 30.5 (cap 30); 169 items of 14-53 s, no file missing | vocals | `yuki` (a whole bank) | sung UTAU recordings (held syllables / VCV strings at fixed pitches), silence-trimmed and joined in seeded random order with short crossfades and random gaps into 12-45 s streams; kumi is 8-bit PCM (quantisation noise), so capped lower |
| `gamemusic` | Debian packages `wesnoth-1.16-music`, `warzone2100-music`, `ufoai-music` | wesnoth: GPL-2+ (debian/copyright); warzone2100: GPL-2+ (original OST), aftermath & legacy albums CC BY-SA 3.0 or GPL-2+ (album license.txt); ufoai: GPL-2+ / CC BY 3.0 / CC BY-SA 3.0 per file (debian/copyright) | 218.8: wesnoth 74.6 (38 tracks), warzone2100 62.5 (25), ufoai 81.8 (36; cap 80) | accompaniment | none | orchestral / electronic instrumentals, at most 150 s of each track; 17 of 132 tracks dropped by title or vocal screen (`DROPPED`) |
| `fof` | Debian packages `fretsonfire-songs-muldjord`, `fretsonfire-songs-sectoid` | muldjord: CC BY-SA 3.0 (credit Muldjord); sectoid: Expat (MIT) | 26.9 (8 songs: sectoid 13.5 with both stems, muldjord 13.3 guitar only) | accompaniment | none | real band stems: `other` = guitar.ogg (lead guitar), `accompaniment` = song.ogg (the band without it; the full instrumental is their sum). No folder has a vocal / no-vocal pair (only song.ogg + guitar.ogg); Muldjord's song.ogg screened as vocal (probably growls), so those 4 items carry `other` only |

Decoding all four sources takes about 50 s on one thread (`python -m models.real_more`).

Left out, and why:
- **milk-en** (github:oxygen-dioxide/milk-en): its terms say "The source audio of this voicebank can only
  be used in permitted singing synthesizers" and "You are only permitted to clean or enhance this
  voicebank's audio"; commercial use needs the author's approval. Training a separator on it is
  neither, so it is refused (only its Breaths folder is free "in other ways": about 18 s, not worth a source).
- **Kogare** (`Kogare/Kogare_DB/wav`, `Kogare/kogare_singing/.../wav` in justln1113/TEST): UTAU-style
  VCV strings of an unnamed bank with no licence, readme or terms anywhere in the repository: refused.
- **singularity-music** and **hyperrogue-music**: already the held-out instrumental tracks of
  bench/quality.py's vocal-leakage benchmark; never trained on.
- **0ad-data** (a 1.4 GB download, mostly not music), supertuxkart-data, freedroidrpg-data:
  not installed; the packages above already exceed the cap.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from models.corpus import RATE
from models.sources import Item, MissingSource, Source, decode_audio, repo_dir, repo_files, to_stereo_44k

SEED = 20261124

# Files a source could not read (absent from a snapshot), by source name; `__main__` prints them.
MISSING: Dict[str, List[str]] = {}


def _missing(source: str, path: str) -> None:
    MISSING.setdefault(source, []).append(path)


def _mono(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=0, keepdims=True) if x.shape[0] > 1 else x


def _stereo(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(x[:1], 2, axis=0) if x.shape[0] == 1 else x[:2], dtype=np.float32)


# ---------------------------------------------------------------- PJS
# 100 short songs composed for the corpus and sung by one Japanese female singer (48 kHz, 24-bit).


def pjs_items() -> Iterator[Item]:
    root = repo_dir("justln1113/TEST")
    for path, read in repo_files(root, "PJS/PJS_corpus_ver1.1/wav", (".wav",)):
        try:
            data = read()
        except subprocess.CalledProcessError:
            _missing("pjs", path)
            continue
        x, rate = decode_audio(data, ".wav")
        yield Item(Path(path).stem, "pjs", {"vocals": to_stereo_44k(_mono(x), rate)}, rate)


# ---------------------------------------------------------------- UTAU voice banks
# (group, github repo, folder prefix, minutes cap or None for all)
UTAU_BANKS = (
    ("yuki", "kgs233/UTAU-Yuki", "", None),
    ("scottpoid", "oxygen-dioxide/scottpoid-ja", "", 45.0),
    ("kumi", "oxygen-dioxide/hitsuboku-kumi-chn", "", 30.0),
)
UTAU_TEST_BANKS = ("yuki",)
FRAME = 441  # 10 ms


def dc_block(x: np.ndarray) -> np.ndarray:
    """Remove DC and sub-audio drift (kumi's samples carry offsets of up to 0.25 full scale):
    the mean, then a one-pole high-pass at about 10 Hz."""
    x = x - x.mean(axis=1, keepdims=True)
    try:
        from scipy.signal import lfilter
    except ImportError:
        return x.astype(np.float32)
    return lfilter([1.0, -1.0], [1.0, -0.9986], x, axis=1).astype(np.float32)


def trim_silence(x: np.ndarray, floor_db: float = -40.0, pad: int = 3 * FRAME) -> Optional[np.ndarray]:
    """The span of `x` (1, n) from the first to the last 10-ms frame within floor_db of its loudest,
    with a short pad and 10-ms fades; None if nothing is left."""
    n = x.shape[1] // FRAME
    if n < 5:
        return None
    rms = np.sqrt(np.mean(x[0, : n * FRAME].reshape(n, FRAME) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(rms > rms.max() * 10 ** (floor_db / 20))[0]
    if rms.max() < 1e-4 or len(loud) == 0:
        return None
    a, b = max(0, loud[0] * FRAME - pad), min(x.shape[1], (loud[-1] + 1) * FRAME + pad)
    y = x[:, a:b].copy()
    if y.shape[1] < 0.15 * RATE:
        return None
    ramp = np.linspace(0.0, 1.0, FRAME, dtype=np.float32)
    y[:, :FRAME] *= ramp
    y[:, -FRAME:] *= ramp[::-1]
    return y


def join_stream(segments: List[np.ndarray], rng: random.Random) -> np.ndarray:
    """Segments one after another: 40 % overlapped by a 10-40 ms crossfade, else 0.05-0.8 s apart."""
    out = segments[0]
    for seg in segments[1:]:
        if rng.random() < 0.4:
            k = min(int(rng.uniform(0.01, 0.04) * RATE), out.shape[1] // 2, seg.shape[1] // 2)
            fade = np.linspace(0.0, 1.0, k, dtype=np.float32)
            head = out[:, -k:] * fade[::-1] + seg[:, :k] * fade
            out = np.concatenate([out[:, :-k], head, seg[:, k:]], axis=1)
        else:
            gap = np.zeros((1, int(rng.uniform(0.05, 0.8) * RATE)), np.float32)
            out = np.concatenate([out, gap, seg], axis=1)
    return out


def utau_bank_items(group: str, repo: str, prefix: str, cap_minutes: Optional[float]) -> Iterator[Item]:
    root = repo_dir(repo)
    files = list(repo_files(root, prefix, (".wav",)))
    rng = random.Random(f"{SEED}-{group}")
    rng.shuffle(files)
    total, index, stream, length, target = 0.0, 0, [], 0, rng.uniform(12, 45) * RATE
    for path, read in files:
        if cap_minutes is not None and total >= cap_minutes * 60 * RATE:
            break
        try:
            data = read()
        except subprocess.CalledProcessError:
            _missing("utau", f"{repo}:{path}")
            continue
        try:
            x, rate = decode_audio(data, ".wav")
        except Exception:  # a few banks carry empty or broken placeholders
            _missing("utau", f"{repo}:{path} (undecodable)")
            continue
        seg = trim_silence(dc_block(to_stereo_44k(_mono(x), rate)[:1]))
        if seg is None:
            continue
        seg = seg * np.float32(10 ** (rng.uniform(-3, 3) / 20))
        stream.append(seg / max(1.0, float(np.abs(seg).max()) / 0.99))
        length += seg.shape[1]
        if length >= target:
            y = join_stream(stream, rng)
            total += y.shape[1]
            yield Item(f"{group}-{index:04d}", group, {"vocals": _stereo(y)}, rate)
            index, stream, length, target = index + 1, [], 0, rng.uniform(12, 45) * RATE
    if stream and length >= 8 * RATE:
        y = join_stream(stream, rng)
        yield Item(f"{group}-{index:04d}", group, {"vocals": _stereo(y)}, RATE)


def utau_items() -> Iterator[Item]:
    for group, repo, prefix, cap in UTAU_BANKS:
        yield from utau_bank_items(group, repo, prefix, cap)


# ---------------------------------------------------------------- Debian game music
TRACK_SECONDS = 150.0
GAME_CAPS = {"wesnoth-1.16-music": 90.0, "warzone2100-music": 80.0, "ufoai-music": 80.0}
WESNOTH = Path("/usr/share/games/wesnoth/1.16/data/core/music")
WARZONE = Path("/usr/share/games/warzone2100/music")
UFOAI = Path("/usr/share/games/ufoai/base/0music.pk3")
FOF = Path("/usr/share/games/fretsonfire/data/songs")
VOCAL_WORDS = ("vocal", "voice", "vox", "choir", "chant", "sing", "lyric", "nunc_dimittis", "anthem", "hymn")
# Dropped by title or by the screen (`--screen`: 90th percentile of 1-s vocal-to-mix energy ratios of
# the studio separator over 5 x 12 s of the excerpt used (the first 22 wesnoth tracks: the whole
# excerpt), above SCREEN_DB). 17 of 132 candidate tracks. The screen is weak on real singing (the
# reason for this retraining: nunc_dimittis, a choir, scored only -20 dB), so it is set strict: it
# drops instrumentals with a prominent lead too, which costs little.
SCREEN_DB = -6.0
DROPPED: Dict[str, str] = {
    "wesnoth-1.16-music/nunc_dimittis.ogg": "title: a sung canticle (choir); screen only -20.1 dB",
    "ufoai-music/music/AlexFightmare.ogg": "screen: p90 -1.9 dB, median -5.3 dB",
    "ufoai-music/music/David03.ogg": "screen: p90 -2.1 dB, median -7.8 dB",
    "ufoai-music/music/PsymongN5.ogg": "screen: p90 -5.5 dB, median -29.9 dB",
    "ufoai-music/music/PsymongO1.ogg": "screen: p90 -5.7 dB, median -26.8 dB",
    "ufoai-music/music/PsymongO2.ogg": "screen: p90 -3.3 dB, median -8.2 dB",
    "ufoai-music/music/PsymongR4.ogg": "screen: p90 -2.2 dB, median -10.4 dB",
    "ufoai-music/music/dawn.ogg": "screen: p90 -5.8 dB, median -9.9 dB",
    "ufoai-music/music/turinItalyM.ogg": "screen: p90 -4.1 dB, median -5.9 dB",
    "ufoai-music/music/van_mission2.ogg": "screen: p90 -1.3 dB, median -10.0 dB",
    "ufoai-music/music/van_mission3.ogg": "screen: p90 -3.4 dB, median -6.5 dB",
    "warzone2100-music/aftermath_soundtrack/track27.opus": "screen: p90 -5.2 dB, median -8.9 dB",
    "warzone2100-music/legacy_soundtrack/track7.opus": "screen: p90 -1.7 dB, median -25.1 dB",
    "warzone2100-music/legacy_soundtrack/track9.opus": "screen: p90 -5.1 dB, median -16.6 dB",
    "warzone2100-music/original_soundtrack/track3.opus": "screen: p90 -4.6 dB, median -16.8 dB",
    "wesnoth-1.16-music/battle-epic.ogg": "screen: p90 -1.2 dB, median -10.8 dB",
    "wesnoth-1.16-music/elf-land.ogg": "screen: p90 -5.0 dB, median -14.6 dB",
}


def _track_key(name: str) -> float:
    return int(hashlib.sha1(f"{SEED}-{name}".encode()).hexdigest()[:8], 16) / 2**32


class Track:
    """One instrumental track of a package: `open()` gives a soundfile-readable object."""

    def __init__(self, package: str, name: str, title: str, open_: Callable[[], object]):
        self.package, self.name, self.title, self.open = package, name, title, open_

    @property
    def key(self) -> str:
        return f"{self.package}/{self.name}"

    def excerpt(self) -> Tuple[np.ndarray, int]:
        """At most TRACK_SECONDS of the track, from a seeded offset in its first half; (2, n) 44.1 kHz."""
        import soundfile as sf

        with sf.SoundFile(self.open()) as f:
            rate, n = f.samplerate, f.frames
            want = int(TRACK_SECONDS * rate)
            start = 0 if n <= want else int((n - want) * (0.1 + 0.4 * _track_key(self.key)))
            f.seek(start)
            x = f.read(min(want, n - start), dtype="float32", always_2d=True).T
        return to_stereo_44k(x, rate), rate

    def seconds(self) -> float:
        import soundfile as sf

        with sf.SoundFile(self.open()) as f:
            return f.frames / f.samplerate


def _zip_member(path: Path, member: str) -> Callable[[], io.BytesIO]:
    return lambda: io.BytesIO(zipfile.ZipFile(path).read(member))


def game_tracks() -> List[Track]:
    """Every candidate track of the installed packages (MissingSource if none is installed)."""
    tracks: List[Track] = []
    if WESNOTH.is_dir():
        for p in sorted(WESNOTH.glob("*.ogg")):
            tracks.append(Track("wesnoth-1.16-music", p.name, p.stem.replace("_", " "), lambda p=p: str(p)))
    if WARZONE.is_dir():
        titles = {}
        for album in sorted(WARZONE.glob("albums/*/album.json")):
            for t in json.loads(album.read_text())["tracks"]:
                titles[f"{album.parent.name}/{t['filename']}"] = t.get("title", "")
        for p in sorted(WARZONE.glob("albums/*/*.opus")):
            name = f"{p.parent.name}/{p.name}"
            tracks.append(Track("warzone2100-music", name, titles.get(name, p.stem), lambda p=p: str(p)))
    if UFOAI.is_file():
        for member in sorted(zipfile.ZipFile(UFOAI).namelist()):
            # the two "dynamictest" files are short test loops of other tracks
            if member.endswith(".ogg") and "dynamictest" not in member:
                tracks.append(Track("ufoai-music", member, Path(member).stem, _zip_member(UFOAI, member)))
    if not tracks:
        raise MissingSource("no game music installed: apt-get install --no-install-recommends " + " ".join(GAME_CAPS))
    return tracks


def title_vocal(track: Track) -> bool:
    text = f"{track.name} {track.title}".lower()
    return any(w in text for w in VOCAL_WORDS)


def game_items() -> Iterator[Item]:
    used: Dict[str, float] = {}
    for track in sorted(game_tracks(), key=lambda t: _track_key(t.key)):
        if track.key in DROPPED or title_vocal(track):
            continue
        if used.get(track.package, 0.0) >= GAME_CAPS[track.package] * 60:
            continue
        x, rate = track.excerpt()
        used[track.package] = used.get(track.package, 0.0) + x.shape[1] / RATE
        ident = track.key.replace("/", "-").replace(".", "-")
        yield Item(ident, track.package, {"accompaniment": x}, rate)


# ---------------------------------------------------------------- Frets on Fire
# song.ogg of the four Muldjord songs (a Danish metal band) screened as vocal throughout (median
# 1-s vocal ratios -5.9 to -10 dB against -17 to -28 for Sectoid's instrumentals): probably growled
# vocals, so only their guitar.ogg is used (as `other`, an item without `accompaniment`).
FOF_GUITAR_ONLY = ("muldjord",)


def fof_items() -> Iterator[Item]:
    if not FOF.is_dir():
        raise MissingSource(
            "apt-get install --no-install-recommends fretsonfire-songs-muldjord fretsonfire-songs-sectoid"
        )
    import soundfile as sf

    for song in sorted(p.parent for p in FOF.glob("*/*/song.ogg")):
        key = f"{song.parent.name}/{song.name}"
        parts = (
            (("other", "guitar.ogg"),)
            if song.parent.name in FOF_GUITAR_ONLY
            else (("accompaniment", "song.ogg"), ("other", "guitar.ogg"))
        )
        stems = {}
        for stem, fname in parts:
            x, rate = sf.read(str(song / fname), dtype="float32", always_2d=True)
            stems[stem] = to_stereo_44k(x.T, rate)
        n = max(v.shape[1] for v in stems.values())
        stems = {k: np.pad(v, ((0, 0), (0, n - v.shape[1]))) for k, v in stems.items()}
        ident = "".join(c if c.isalnum() else "-" for c in key)
        yield Item(ident, song.parent.name, stems, rate)


SOURCES_MORE: List[Source] = [
    Source(
        "pjs",
        "github:justln1113/TEST (folder PJS/PJS_corpus_ver1.1/wav)",
        "CC BY-SA 4.0 (PJS corpus v1.1, Koguchi & Takamichi)",
        "vocals",
        pjs_items,
        (),
        "one Japanese female singer, 100 composed songs, 48 kHz; all training",
    ),
    Source(
        "utau",
        "github:kgs233/UTAU-Yuki, github:oxygen-dioxide/scottpoid-ja, "
        "github:oxygen-dioxide/hitsuboku-kumi-chn (whole repositories)",
        "yuki: public-domain dedication; scottpoid: voicebank terms allow any audio editing, commercial "
        "use and use outside singing synthesizers (credit SCOTTPOID); kumi: voicebank terms allow "
        "commercial use, audio editing and porting (credit Hitsuboku Kumi / Cubialpha)",
        "vocals",
        utau_items,
        UTAU_TEST_BANKS,
        "sung UTAU samples joined into 12-45 s streams; bank yuki held out",
    ),
    Source(
        "gamemusic",
        "Debian packages wesnoth-1.16-music, warzone2100-music, ufoai-music",
        "GPL-2+ / CC BY-SA 3.0 / CC BY 3.0 (per package and file, see debian/copyright)",
        "accompaniment",
        game_items,
        (),
        "vocal-free instrumentals (screened), at most 150 s a track, capped per package",
    ),
    Source(
        "fof",
        "Debian packages fretsonfire-songs-muldjord, fretsonfire-songs-sectoid",
        "CC BY-SA 3.0 (Muldjord) / Expat (Sectoid)",
        "accompaniment",
        fof_items,
        (),
        "real band stems: lead guitar as other, the rest as accompaniment",
    ),
]


# ---------------------------------------------------------------- screening and report


def vocal_scores(x: np.ndarray, model) -> Tuple[float, float]:
    """(90th percentile, median) over audible 1-s frames of 10 log10(E_vocals / E_mix) by `model`."""
    import stemforge

    out = stemforge.separate(x, RATE, model, threads=1)
    n = x.shape[1] // RATE
    e_mix = (x[:, : n * RATE] ** 2).reshape(2, n, RATE).sum(axis=(0, 2))
    e_voc = (out["vocals"][:, : n * RATE] ** 2).reshape(2, n, RATE).sum(axis=(0, 2))
    audible = e_mix > e_mix.max() * 1e-4
    r = 10 * np.log10((e_voc[audible] + 1e-9) / (e_mix[audible] + 1e-9))
    return float(np.percentile(r, 90)), float(np.median(r))


def windows(x: np.ndarray, count: int = 5, seconds: float = 12.0) -> np.ndarray:
    """`count` evenly spaced windows of `x` joined (the screen's sample of a track)."""
    w = int(seconds * RATE)
    if x.shape[1] <= count * w:
        return x
    starts = np.linspace(0, x.shape[1] - w, count).astype(int)
    return np.concatenate([x[:, a : a + w] for a in starts], axis=1)


def screen(model_name: str = "studio", start: int = 0) -> None:
    """Score every candidate accompaniment (5 x 12 s of the game tracks' excerpts and of FoF's
    song.ogg), most vocal first."""
    import soundfile as sf

    import stemforge

    model = stemforge.load_model(model_name)
    rows = []
    for track in game_tracks()[start:]:
        x, _ = track.excerpt()
        p90, med = vocal_scores(windows(x), model)
        rows.append((p90, med, track.key, track.title, "title" if title_vocal(track) else ""))
        print(f"{p90:7.1f} {med:7.1f}  {track.key}  ({track.title}) {rows[-1][4]}", flush=True)
    for song in sorted(p.parent for p in FOF.glob("*/*/song.ogg")):
        x, rate = sf.read(str(song / "song.ogg"), dtype="float32", always_2d=True)
        p90, med = vocal_scores(windows(to_stereo_44k(x.T, rate)), model)
        rows.append((p90, med, f"fof/{song.parent.name}/{song.name}", "", ""))
        print(f"{p90:7.1f} {med:7.1f}  {rows[-1][2]}", flush=True)
    print("\nmost vocal first:")
    for row in sorted(rows, reverse=True):
        print(f"{row[0]:7.1f} {row[1]:7.1f}  {row[2]}  {row[3]} {row[4]}")


def report(names: Optional[List[str]] = None) -> None:
    t0 = time.time()
    for source in SOURCES_MORE:
        if names and source.name not in names:
            continue
        t = time.time()
        count: Dict[str, List[float]] = {}
        try:
            for item in source.items():
                lengths = {v.shape[1] for v in item.stems.values()}
                for v in item.stems.values():
                    assert v.dtype == np.float32 and v.ndim == 2 and v.shape[0] == 2, (item.id, v.shape)
                    assert np.isfinite(v).all(), item.id
                assert len(lengths) == 1, (item.id, lengths)
                c = count.setdefault(item.group, [0, 0.0, float("inf"), 0.0])
                s = lengths.pop() / RATE
                c[0] += 1
                c[1] += s / 60
                c[2], c[3] = min(c[2], s), max(c[3], s)
        except MissingSource as e:
            print(f"{source.name}: MISSING {e}")
            continue
        items = sum(c[0] for c in count.values())
        minutes = sum(c[1] for c in count.values())
        test = sum(c[1] for g, c in count.items() if g in source.test_groups)
        print(
            f"{source.name} ({source.kind}): {items} items, {minutes:.1f} min "
            f"(held out {test:.1f} min: {', '.join(source.test_groups) or 'none'}), "
            f"missing files {len(MISSING.get(source.name, []))}, decoded in {time.time() - t:.0f} s"
        )
        for g, c in sorted(count.items()):
            print(f"    {g:22s} {c[0]:4d} items {c[1]:7.1f} min  ({c[2]:.1f}-{c[3]:.1f} s an item)")
        for path in MISSING.get(source.name, []):
            print(f"    missing: {path}")
    print(f"total decode {time.time() - t0:.0f} s")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="*", help="only these sources")
    parser.add_argument("--screen", action="store_true", help="score the accompaniment tracks for vocals")
    parser.add_argument("--screen-from", type=int, default=0, help="skip the first N game tracks")
    args = parser.parse_args()
    if args.screen:
        screen(start=args.screen_from)
    else:
        report(args.sources)
