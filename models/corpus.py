"""Render the multitrack training corpus from recorded material Debian and PyPI ship.

    python build.py data [--train N] [--test N] [--jobs J]

No multitrack dataset can be downloaded here, so every clip is rendered:
parts from mma grooves (drums, bass, comping) over procedural chord charts,
melodies from the music21 corpus or procedural chord-tone lines; instruments
from real sampled SoundFonts, drums from recorded kits (SoundFont kits and
Hydrogen sample kits); vocals sung from real English speech with WORLD (the
speech's own consonants and breaths kept, its voiced frames moved onto the
melody with glides and vibrato), formant-synthesised vowels, and small
choirs. Stems get random levels, panning and pedalboard effects; the mix is
always the exact sum of the stems (the trainer sums them).

Each clip is `<corpus>/<split>/clip-NNNNN.npz`: `stems` int16 (4, 2, n) in
STEMS order, `scale` (multiply by scale / 32767 for float), `rate`, `info`
(JSON). A clip is a pure function of (split, index): rendering resumes where
it stopped, and the held-out split's assets (SoundFont, kits, grooves,
melodies, speech) never appear in training.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

RATE = 44100
CLIP_SECONDS = 8.0
STEMS = ("drums", "bass", "other", "vocals")
SPLIT_SEED = 20261122
CORPUS = Path(os.environ.get("STEMFORGE_CORPUS", Path.home() / ".cache" / "stemforge" / "corpus"))

SF_TRAIN = "/usr/share/sounds/sf3/MuseScore_General.sf3"
SF_TEST = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
AVL = {"train": "/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2", "test": "/usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2"}
HYDROGEN = Path("/usr/share/hydrogen/data/drumkits")
MMA_LIB = Path("/usr/share/mma/lib/stdlib")
FILLETS = Path("/usr/share/games/fillets-ng/sound")

# Licences of every asset family, for the model card.
LICENCES = {
    "MuseScore_General.sf3 (musescore-general-soundfont)": "MIT",
    "FluidR3_GM.sf2 (fluid-soundfont-gm)": "MIT",
    "Black Pearl / Red Zeppelin kits (avldrums.lv2-soundfont)": "CC BY-SA 3.0",
    "Hydrogen drum kits (hydrogen-drumkits)": "GPL-2+ / CC BY-SA / CC BY (per kit, see its drumkit.xml)",
    "mma grooves (mma)": "GPL-2+ (patterns only; rendered output carries no code)",
    "music21 corpus (music21)": "BSD-3 (public-domain scores)",
    "Fish Fillets NG English dialogue (fillets-ng-data)": "GPL-2+",
}  # the held-out benchmarks also use asterisk prompts (CC BY 3.0) and game music (CC BY-SA 3.0)

HYDROGEN_NOTES = [  # instrument-name keyword -> General MIDI drum note
    ("kick", 36),
    ("bd", 36),
    ("bass drum", 36),
    ("stick", 37),
    ("rim", 37),
    ("clap", 39),
    ("snare", 38),
    ("sd", 38),
    ("closed", 42),
    ("pedal", 44),
    ("open", 46),
    ("low", 45),
    ("floor", 41),
    ("mid", 47),
    ("hi tom", 50),
    ("tom hi", 50),
    ("high", 50),
    ("crash", 49),
    ("ride", 51),
    ("china", 52),
    ("splash", 55),
    ("cowbell", 56),
    ("tamb", 54),
    ("hh", 42),
    ("hat", 42),
    ("tom", 47),
]
PROGRESSIONS = [
    ["I", "V", "vi", "IV"],
    ["vi", "IV", "I", "V"],
    ["I", "IV", "V", "IV"],
    ["ii", "V", "I", "vi"],
    ["I", "vi", "IV", "V"],
    ["i", "VI", "III", "VII"],
    ["i", "iv", "v", "i"],
    ["I", "iii", "IV", "V"],
    ["i", "VII", "VI", "V"],
]
DEGREES = {
    "I": (0, ""),
    "ii": (2, "m"),
    "iii": (4, "m"),
    "IV": (5, ""),
    "V": (7, ""),
    "vi": (9, "m"),
    "i": (0, "m"),
    "iv": (5, "m"),
    "v": (7, "m"),
    "III": (3, ""),
    "VI": (8, ""),
    "VII": (10, ""),
}
NOTE_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
OTHER_PROGRAMS = [
    0,
    1,
    2,
    4,
    5,
    6,
    7,
    11,
    16,
    17,
    19,
    24,
    25,
    26,
    27,
    28,
    29,
    30,
    40,
    41,
    42,
    48,
    49,
    50,
    52,
    56,
    60,
    61,
    65,
    66,
    71,
    73,
    80,
    81,
    88,
    89,
    90,
    95,
]
BASS_PROGRAMS = [32, 33, 34, 35, 36, 37, 38, 39]


# -- the held-out split -------------------------------------------------------------


def _split(items: List, test_share: float, salt: str) -> Dict[str, List]:
    items = sorted(items)
    rng = random.Random(f"{SPLIT_SEED}-{salt}")
    rng.shuffle(items)
    k = max(1, round(len(items) * test_share))
    return {"test": sorted(items[:k]), "train": sorted(items[k:])}


@lru_cache(maxsize=None)
def grooves() -> Dict[str, List[str]]:
    """Groove names, split by the mma library file that defines them (a file's
    variants share their patterns, so they stay on one side)."""
    by_file = {}
    for f in sorted(MMA_LIB.glob("*.mma")):
        if f.stem.startswith(("metronome", "none")):
            continue
        names = set()
        for line in f.read_text(errors="ignore").splitlines():
            m = re.match(r"\s*DefGroove\s+(\S+)", line, re.I)
            if m and not re.search(r"(intro|end|fill)", m.group(1), re.I):
                names.add(m.group(1))
        if names:
            by_file[f.stem] = sorted(names)
    files = _split(list(by_file), 0.2, "grooves")
    return {split: [g for f in files[split] for g in by_file[f]] for split in files}


@lru_cache(maxsize=None)
def hydrogen_kits() -> Dict[str, List[str]]:
    """Kits with at least a snare and a hi-hat that map onto General MIDI notes."""
    kits = [d.name for d in HYDROGEN.iterdir() if (d / "drumkit.xml").exists()]
    usable = [k for k in kits if {38, 42} <= set(hydrogen_kit(k))]
    return _split(usable, 0.3, "kits")


@lru_cache(maxsize=None)
def speech_files() -> Dict[str, List[str]]:
    """English dialogue, split by game level so that held-out lines are never trained on."""
    levels = sorted({p.parent.parent.name for p in FILLETS.glob("*/en/*.ogg")})
    split = _split(levels, 0.2, "speech")
    return {s: sorted(str(p) for lv in split[s] for p in (FILLETS / lv / "en").glob("*.ogg")) for s in split}


@lru_cache(maxsize=None)
def melodies() -> Dict[str, List[List[Tuple[float, int]]]]:
    """Soprano lines of Bach chorales from the music21 corpus: (quarter lengths, midi|-1)."""
    cache = CORPUS / "melodies.json"
    if cache.exists():
        data = json.loads(cache.read_text())
    else:
        from music21 import corpus

        data = []
        for path in sorted(corpus.getComposer("bach"))[:160]:
            try:
                part = corpus.parse(path).parts[0].flatten().notesAndRests
            except Exception:  # a few corpus files are not chorales with parts
                continue
            line = [
                (float(n.quarterLength), int(n.pitch.midi) if n.isNote else -1)
                for n in part
                if float(n.quarterLength) > 0
            ]
            if len(line) >= 16:
                data.append(line)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(data))
    idx = _split(list(range(len(data))), 0.2, "melodies")
    return {s: [data[i] for i in idx[s]] for s in idx}


# -- parts: mma grooves to MIDI events -----------------------------------------------


@dataclass
class Note:
    start: float
    end: float
    pitch: int
    velocity: int
    channel: int
    program: int
    stem: str


def chord_chart(rng: random.Random, key: int, bars: int) -> List[Tuple[int, str]]:
    prog = rng.choice(PROGRESSIONS)
    per_bar = rng.choice([1, 1, 2])
    chart = []
    for b in range(bars * per_bar):
        degree, quality = DEGREES[prog[b % len(prog)]]
        chart.append(((key + degree) % 12, quality))
    return chart, per_bar


def render_midi(groove: str, tempo: float, chart, per_bar: int) -> List[Note]:
    bars = len(chart) // per_bar
    lines = [f"Tempo {tempo:.0f}", f"Groove {groove}"]
    for b in range(bars):
        chords = " ".join(NOTE_NAMES[r] + q for r, q in chart[b * per_bar : (b + 1) * per_bar])
        lines.append(f"{b + 1} {chords}")
    with tempfile.TemporaryDirectory() as tmp:
        src, mid = Path(tmp) / "song.mma", Path(tmp) / "song.mid"
        src.write_text("\n".join(lines) + "\n")
        subprocess.run(["mma", str(src), "-f", str(mid)], capture_output=True, timeout=60, check=True)
        return parse_midi(mid)


def parse_midi(path: Path) -> List[Note]:
    """Notes of an mma MIDI file; each note's stem follows its mma track's name
    (Drum*, Bass*/Walk*, the rest is other). mma writes one tempo, in track 0."""
    import mido

    midi = mido.MidiFile(str(path))
    tempo = next((m.tempo for t in midi.tracks for m in t if m.type == "set_tempo"), 500000)
    seconds_per_tick = tempo / 1e6 / midi.ticks_per_beat
    notes = []
    for track in midi.tracks:
        name = next((m.name for m in track if m.type == "track_name"), "").lower()
        stem = "drums" if name.startswith("drum") else "bass" if name.startswith(("bass", "walk")) else "other"
        ticks, active, program = 0, {}, 0
        for msg in track:
            ticks += msg.time
            now = ticks * seconds_per_tick
            if msg.type == "program_change":
                program = msg.program
            elif msg.type in ("note_on", "note_off"):
                key = (msg.channel, msg.note)
                if msg.type == "note_on" and msg.velocity > 0:
                    active[key] = (now, msg.velocity)
                elif key in active:
                    start, vel = active.pop(key)
                    notes.append(
                        Note(
                            start,
                            max(now, start + 0.02),
                            msg.note,
                            vel,
                            msg.channel,
                            program,
                            "drums" if msg.channel == 9 else stem,
                        )
                    )
    return notes


# -- instruments --------------------------------------------------------------------


@lru_cache(maxsize=4)
def _synth(sf_path: str):
    """One synth per SoundFont per process: loading an .sf3 decodes every sample."""
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=RATE, gain=-6)
    return synth, synth.sfload(sf_path)


def render_soundfont(
    notes: List[Note],
    sf_path: str,
    seconds: float,
    drums: bool,
    program_map: Optional[Dict[int, int]] = None,
    bank: int = 0,
) -> np.ndarray:
    synth, sfid = _synth(sf_path)
    synth.sounds_off(None)  # silence what the previous render left ringing
    synth.generate(4096)
    total = int(seconds * RATE)
    out = np.zeros((total, 2), np.float32)
    channels = sorted({n.channel for n in notes})
    for ch in channels:
        if drums:
            try:
                synth.program_select(ch, sfid, 128 if bank == 128 else 0, 0, is_drums=True)
            except Exception:
                synth.program_select(ch, sfid, 0, 0, is_drums=True)
        else:
            prog = (program_map or {}).get(ch, next(n.program for n in notes if n.channel == ch))
            try:
                synth.program_select(ch, sfid, 0, prog)
            except Exception:
                synth.program_select(ch, sfid, 0, 0)
    events = sorted([(n.start, 1, n) for n in notes] + [(n.end, 0, n) for n in notes], key=lambda e: (e[0], e[1]))
    pos = 0
    for t, on, n in events:
        at = min(total, int(t * RATE))
        if at > pos:
            out[pos:at] = np.frombuffer(synth.generate(at - pos), np.float32).reshape(-1, 2)
            pos = at
        if pos >= total:
            break
        if on:
            synth.noteon(n.channel, n.pitch, n.velocity)
        else:
            synth.noteoff(n.channel, n.pitch)
    if pos < total:
        out[pos:] = np.frombuffer(synth.generate(total - pos), np.float32).reshape(-1, 2)
    return out.T


@lru_cache(maxsize=16)
def hydrogen_kit(name: str) -> Dict[int, np.ndarray]:
    """GM drum note -> stereo sample of a Hydrogen kit (first layer of each instrument)."""
    from pedalboard.io import AudioFile

    folder = HYDROGEN / name
    root = ET.parse(folder / "drumkit.xml").getroot()
    ns = {"h": root.tag.split("}")[0].strip("{")} if "}" in root.tag else {}
    find = (lambda e, tag: e.findall(f".//h:{tag}", ns)) if ns else (lambda e, tag: e.findall(f".//{tag}"))
    kit: Dict[int, np.ndarray] = {}
    for inst in find(root, "instrument"):
        names = find(inst, "name")
        files = find(inst, "filename")
        if not names or not files:
            continue
        label = names[0].text.lower() if names[0].text else ""
        note = next((n for k, n in HYDROGEN_NOTES if k in label), None)
        path = folder / (files[0].text or "")
        if note is None or note in kit or not path.is_file():
            continue
        try:
            with AudioFile(str(path)).resampled_to(RATE) as f:
                audio = f.read(min(f.frames, int(2.5 * RATE)))
        except Exception:
            continue
        kit[note] = np.repeat(audio, 2, axis=0) if audio.shape[0] == 1 else audio[:2]
    return kit


def render_hydrogen(notes: List[Note], kit_name: str, seconds: float) -> np.ndarray:
    kit = hydrogen_kit(kit_name)
    total = int(seconds * RATE)
    out = np.zeros((2, total), np.float32)
    fallback = {
        41: 45,
        43: 45,
        48: 47,
        50: 47,
        45: 47,
        51: 42,
        53: 51,
        57: 49,
        59: 51,
        44: 42,
        46: 42,
        49: 46,
        37: 38,
        39: 38,
        40: 38,
        35: 36,
    }
    for n in notes:
        sample = kit.get(n.pitch)
        if sample is None:
            sample = kit.get(fallback.get(n.pitch, -1))
        if sample is None:
            continue
        start = int(n.start * RATE)
        if start >= total:
            continue
        seg = sample[:, : total - start] * (n.velocity / 127.0)
        out[:, start : start + seg.shape[1]] += seg
    return out


# -- vocals -------------------------------------------------------------------------


@lru_cache(maxsize=64)
def world_analysis(path: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """WORLD f0, spectral envelope and aperiodicity of a speech file (cached on disk)."""
    import pyworld as pw

    cache = CORPUS / "world" / (re.sub(r"[^\w.-]", "_", path) + ".npz")
    if cache.exists():
        d = np.load(cache)
        return d["f0"], d["sp"], d["ap"], int(d["fs"])
    from pedalboard.io import AudioFile

    with AudioFile(path) as f:
        fs = int(f.samplerate)
        x = f.read(f.frames).mean(axis=0).astype(np.float64)
    f0, t = pw.dio(x, fs, frame_period=5.0, f0_floor=60, f0_ceil=600)
    f0 = pw.stonemask(x, f0, t, fs)
    sp = pw.cheaptrick(x, f0, t, fs)
    ap = pw.d4c(x, f0, t, fs)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, f0=f0, sp=sp.astype(np.float32), ap=ap.astype(np.float32), fs=fs)
    return f0, sp.astype(np.float32), ap.astype(np.float32), fs


def melody_line(
    rng: random.Random, split: str, key: int, tempo: float, seconds: float, chart, per_bar: int
) -> List[Tuple[float, float, int]]:
    """(start s, duration s, midi) notes of the vocal line; gaps are rests."""
    beat = 60.0 / tempo
    notes = []
    pool = melodies()[split]
    if pool and rng.random() < 0.5:
        line = rng.choice(pool)
        first = rng.randrange(0, max(1, len(line) - 8))
        pitches = [p for _, p in line if p > 0]
        shift = key - (int(np.median(pitches)) % 12) if pitches else 0
        t = rng.choice([0.0, beat, 2 * beat])
        for q, p in line[first:] + line[:first]:
            if t >= seconds:
                break
            if p > 0:
                notes.append((t, q * beat, p + shift))
            t += q * beat
    else:
        t = rng.choice([0.0, beat])
        scale = [0, 2, 4, 5, 7, 9, 11]
        pitch = 60 + key
        while t < seconds:
            bar = int(t / (4 * beat))
            root, quality = chart[(bar * per_bar) % len(chart)]
            dur = rng.choice([0.5, 0.5, 1, 1, 1, 1.5, 2, 3]) * beat
            if rng.random() < 0.12:
                t += dur  # a rest: a breath
                continue
            if rng.random() < 0.6:  # chord tone
                third = 3 if quality == "m" else 4
                pitch = 60 + root + rng.choice([0, third, 7, 12]) - (12 if rng.random() < 0.3 else 0)
            else:  # step along the scale
                deg = min(range(7), key=lambda i: abs((pitch - 60 - key) % 12 - scale[i]))
                deg = (deg + rng.choice([-1, 1])) % 7
                pitch = 60 + key + scale[deg] + (12 * ((pitch - 60 - key) // 12))
            notes.append((t, dur, int(np.clip(pitch, 50, 79))))
            t += dur
    return notes


def f0_contour(notes, frames: int, frame_s: float, rng: random.Random, transpose: float) -> np.ndarray:
    """Target f0 per frame with glides between notes and delayed vibrato; 0 in rests."""
    f0 = np.zeros(frames)
    rate, depth = rng.uniform(4.8, 6.5), rng.uniform(0.15, 0.45)  # vibrato Hz, semitones
    glide = rng.uniform(0.03, 0.08)
    prev = None
    for start, dur, midi in notes:
        a, b = int(start / frame_s), min(frames, int((start + dur) / frame_s))
        if a >= frames:
            break
        t = np.arange(b - a) * frame_s
        semis = np.full(b - a, midi + transpose, float)
        if prev is not None:
            semis += (prev - midi) * np.exp(-t / glide)
        vib = depth * np.sin(2 * np.pi * rate * t) * np.clip((t - 0.2) / 0.3, 0, 1)
        f0[a:b] = 440.0 * 2 ** ((semis + vib - 69) / 12)
        prev = midi + transpose
    return f0


def sing_world(notes, seconds: float, speech: List[str], rng: random.Random) -> np.ndarray:
    """Speech turned into singing: the speech's frames, stretched, on the melody's f0."""
    import pyworld as pw

    frame_s = 0.005
    frames = int(seconds / frame_s)
    fs = None
    f0_src, sp_rows, ap_rows = [], [], []
    while sum(len(x) for x in f0_src) < frames:
        f0, sp, ap, fs_i = world_analysis(rng.choice(speech))
        if fs is None:
            fs = fs_i
        if fs_i != fs or len(f0) < 40:
            continue
        stretch = rng.uniform(1.4, 2.6)
        idx = np.minimum((np.arange(int(len(f0) * stretch)) / stretch).astype(int), len(f0) - 1)
        f0_src.append(f0[idx])
        sp_rows.append(sp[idx])
        ap_rows.append(ap[idx])
        gap = int(rng.uniform(0.05, 0.4) / frame_s)  # a breath between phrases
        f0_src.append(np.zeros(gap))
        sp_rows.append(np.tile(sp[:1] * 1e-4, (gap, 1)))
        ap_rows.append(np.ones((gap, sp.shape[1]), np.float32))
    f0_src = np.concatenate(f0_src)[:frames]
    sp = np.ascontiguousarray(np.concatenate(sp_rows)[:frames], np.float64)
    ap = np.ascontiguousarray(np.concatenate(ap_rows)[:frames], np.float64)
    median = np.median(f0_src[f0_src > 0]) if np.any(f0_src > 0) else 150.0
    pitches = [m for _, _, m in notes] or [60]
    transpose = 12 * np.round(np.log2(median * rng.uniform(1.1, 1.8) / (440 * 2 ** ((np.median(pitches) - 69) / 12))))
    target = f0_contour(notes, frames, frame_s, rng, transpose)
    voiced = (f0_src > 0) & (target > 0)
    jitter = np.random.default_rng(rng.randrange(1 << 31)).uniform(-0.003, 0.003, frames)
    f0 = np.where(voiced, target * (1 + jitter), 0.0)
    # Outside the notes the speech stays speech-like but quieter: breaths and consonants.
    sp = np.where(((f0_src > 0) & (target == 0))[:, None], sp * 0.05, sp)
    y = pw.synthesize(f0, sp, ap, fs, frame_s * 1000)
    import soxr

    return soxr.resample(y.astype(np.float32), fs, RATE)[: int(seconds * RATE)]


VOWELS = {
    "a": (800, 1150, 2900),
    "e": (400, 2100, 2800),
    "i": (300, 2300, 3000),
    "o": (450, 800, 2830),
    "u": (325, 700, 2530),
}


def sing_formants(notes, seconds: float, rng: random.Random) -> np.ndarray:
    """Formant-synthesised sung vowels: glottal pulses through vowel resonances, with
    aspiration and short unvoiced consonant bursts."""
    from scipy.signal import lfilter

    n = int(seconds * RATE)
    frame_s = 0.005
    f0 = np.repeat(
        f0_contour(notes, int(seconds / frame_s) + 1, frame_s, rng, rng.choice([-12, 0])), int(RATE * frame_s)
    )
    f0 = np.pad(f0, (0, max(0, n - len(f0))))[:n]
    phase = np.cumsum(f0 / RATE)
    source = np.where(f0 > 0, (phase % 1.0) ** rng.uniform(2, 4) - 0.3, 0.0)
    source += np.where(f0 > 0, 0.02, 0.0) * np.random.default_rng(rng.randrange(1 << 30)).standard_normal(n)
    shift = rng.uniform(0.9, 1.2)  # vocal-tract size
    out = np.zeros(n)
    for start, dur, _ in notes:
        a, b = int(start * RATE), min(n, int((start + dur) * RATE))
        if a >= n:
            break
        formants = VOWELS[rng.choice(list(VOWELS))]
        seg = source[a:b]
        voice = np.zeros_like(seg)
        for k, f in enumerate(formants):
            r = np.exp(-np.pi * (80 + 40 * k) / RATE)
            w = 2 * np.pi * f * shift / RATE
            voice += lfilter([1 - r], [1, -2 * r * np.cos(w), r * r], seg) / (k + 1)
        burst = int(rng.uniform(0.02, 0.06) * RATE)  # an unvoiced consonant at the onset
        if rng.random() < 0.6 and b - a > burst:
            noise = np.random.default_rng(a).standard_normal(burst) * 0.05
            voice[:burst] += lfilter([1, -0.95], [1], noise)
        out[a:b] += voice
    return out.astype(np.float32)


# -- mixing -------------------------------------------------------------------------


def effects(stem: str, rng: random.Random, guitar: bool):
    import pedalboard as pb

    chain = []
    if stem == "vocals":
        chain += [pb.HighpassFilter(rng.uniform(70, 160)), pb.Compressor(rng.uniform(-24, -12), rng.uniform(2, 5))]
        if rng.random() < 0.5:
            chain.append(pb.PeakFilter(rng.uniform(2000, 5000), rng.uniform(-2, 5), 1.0))
        if rng.random() < 0.3:
            chain.append(pb.Delay(rng.uniform(0.1, 0.4), rng.uniform(0.1, 0.4), rng.uniform(0.05, 0.2)))
    elif stem == "drums":
        if rng.random() < 0.6:
            chain.append(pb.Compressor(rng.uniform(-20, -8), rng.uniform(2, 6)))
    elif stem == "bass":
        if rng.random() < 0.3:
            chain.append(pb.LowpassFilter(rng.uniform(800, 4000)))
        if rng.random() < 0.15:
            chain.append(pb.Distortion(rng.uniform(5, 15)))
    else:
        if guitar and rng.random() < 0.6:
            chain.append(pb.Distortion(rng.uniform(10, 30)))
        if rng.random() < 0.3:
            chain.append(pb.Chorus())
        if rng.random() < 0.4:
            chain.append(pb.PeakFilter(rng.uniform(200, 4000), rng.uniform(-6, 6), 0.8))
    if rng.random() < 0.6:
        chain.append(pb.Reverb(room_size=rng.uniform(0.1, 0.7), wet_level=rng.uniform(0.05, 0.3), dry_level=1.0))
    return pb.Pedalboard(chain)


def place(mono_or_stereo: np.ndarray, rng: random.Random, width: float) -> np.ndarray:
    x = mono_or_stereo if mono_or_stereo.ndim == 2 else np.stack([mono_or_stereo] * 2)
    pan = rng.uniform(-width, width)
    return x * np.array([[np.cos((pan + 1) * np.pi / 4)], [np.sin((pan + 1) * np.pi / 4)]]) * np.sqrt(2)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def render_clip(split: str, index: int, clip_seconds: float = CLIP_SECONDS, salt: str = "") -> Tuple[np.ndarray, dict]:
    """One clip: (4, 2, samples) float32 stems and a description. Deterministic."""
    rng = random.Random(f"{SPLIT_SEED}-{split}-{index}{salt}")
    np.random.seed(rng.randrange(1 << 31))
    tempo = rng.uniform(70, 160)
    key = rng.randrange(12)
    bar_s = 4 * 60.0 / tempo
    bars = int(np.ceil((clip_seconds + 1.5) / bar_s)) + 1
    chart, per_bar = chord_chart(rng, key, bars)
    groove = rng.choice(grooves()[split])
    notes = render_midi(groove, tempo, chart, per_bar)
    start = rng.uniform(0, max(0.0, bars * bar_s - clip_seconds - 0.5))
    seconds = start + clip_seconds + 0.5
    sf = SF_TRAIN if split == "train" else SF_TEST
    info = {"split": split, "index": index, "tempo": round(tempo, 1), "key": NOTE_NAMES[key], "groove": groove}

    parts = {s: [n for n in notes if n.stem == s] for s in ("drums", "bass", "other")}
    # drums: a SoundFont kit (GM or avldrums) or a recorded Hydrogen kit
    kind = rng.choice(["gm", "avl", "hydrogen", "hydrogen"])
    if kind == "hydrogen":
        kit = rng.choice(hydrogen_kits()[split])
        drums = render_hydrogen(parts["drums"], kit, seconds)
    else:
        kit = sf if kind == "gm" else AVL[split]
        drums = render_soundfont(parts["drums"], kit, seconds, drums=True, bank=128 if kind == "gm" else 0)
    info["drums"] = f"{kind}:{Path(kit).name}"
    bass_prog = {ch: rng.choice(BASS_PROGRAMS) for ch in {n.channel for n in parts["bass"]}}
    bass = render_soundfont(parts["bass"], sf, seconds, drums=False, program_map=bass_prog)
    other_prog = {ch: rng.choice(OTHER_PROGRAMS) for ch in {n.channel for n in parts["other"]}}
    other = render_soundfont(parts["other"], sf, seconds, drums=False, program_map=other_prog)
    guitar = any(24 <= p <= 31 for p in other_prog.values())

    line = melody_line(rng, split, key, tempo, seconds, chart, per_bar)
    style = rng.choices(["world", "formant", "choir"], [0.7, 0.15, 0.15])[0]
    speech = speech_files()[split]
    if style == "world":
        vocals = place(sing_world(line, seconds, speech, rng), rng, 0.2)
    elif style == "formant":
        vocals = place(sing_formants(line, seconds, rng), rng, 0.3)
    else:
        voices = [place(sing_world(line, seconds, speech, rng), rng, 0.8) for _ in range(3)]
        vocals = sum(v[:, : min(x.shape[1] for x in voices)] for v in voices)
    info["vocals"] = style

    stems = {"drums": drums, "bass": place(bass, rng, 0.2), "other": other, "vocals": vocals}
    n = int(clip_seconds * RATE)
    a = int(start * RATE)
    out = np.zeros((4, 2, n), np.float32)
    levels = {"drums": (-6, 3), "bass": (-6, 3), "other": (-8, 3), "vocals": (-4, 4)}
    silence = {"drums": 0.08, "bass": 0.08, "other": 0.08, "vocals": 0.15}
    for i, s in enumerate(STEMS):
        x = stems[s]
        if x.shape[1] < a + n:
            x = np.pad(x, ((0, 0), (0, a + n - x.shape[1])))
        x = effects(s, rng, guitar)(x.astype(np.float32), RATE)[:, a : a + n]
        if rms(x) < 1e-5 or rng.random() < silence[s]:
            continue
        out[i] = x / rms(x) * 0.1 * 10 ** (rng.uniform(*levels[s]) / 20)
    return out, info


def write_clip(split: str, index: int, folder: Path = CORPUS) -> Path:
    path = folder / split / f"clip-{index:05d}.npz"
    if path.exists():
        return path
    stems, info = render_clip(split, index)
    peak = float(max(np.abs(stems.sum(0)).max(), np.abs(stems).max(), 1e-6))
    scale = peak * 1.01
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.npz")
    np.savez(
        tmp,
        stems=np.round(stems / scale * 32767).astype(np.int16),
        scale=np.float32(scale),
        rate=RATE,
        info=json.dumps(info),
    )
    os.replace(tmp, path)
    return path


def render_demo(folder: Path, seconds: float = 20.0, index: int = 7) -> None:
    """The README's demo song: held-out assets only, so no trained model has heard it.
    Writes demo-mix.flac and stems/<stem>.flac (16-bit); the mix is the sum of the
    stems as written."""
    from pedalboard.io import AudioFile

    stems, info = render_clip("test", index, seconds, salt="-demo")
    while any(rms(s) < 1e-4 for s in stems):  # a demo needs all four stems
        index += 1
        stems, info = render_clip("test", index, seconds, salt="-demo")
    stems = stems / (np.abs(stems.sum(0)).max() / 0.8)
    stems = np.round(stems * 32767) / 32767  # what 16-bit files will hold
    (folder / "stems").mkdir(parents=True, exist_ok=True)
    for s, x in zip(STEMS, stems):
        with AudioFile(str(folder / "stems" / f"{s}.flac"), "w", RATE, 2, bit_depth=16) as f:
            f.write(x.astype(np.float32))
    with AudioFile(str(folder / "demo-mix.flac"), "w", RATE, 2, bit_depth=24) as f:
        f.write(stems.sum(0).astype(np.float32))
    (folder / "demo.json").write_text(json.dumps({**info, "seconds": seconds}, indent=1))
    print(f"wrote {folder}: {json.dumps(info)}")


def load_clip(path: Path) -> np.ndarray:
    d = np.load(path)
    return d["stems"].astype(np.float32) * (float(d["scale"]) / 32767)


def _work(job: Tuple[str, int]) -> str:
    try:
        return str(write_clip(*job))
    except Exception as e:  # a bad asset must not stop the corpus; it is reported
        return f"FAILED {job}: {type(e).__name__}: {e}"


def render_corpus(train: int, test: int, jobs: int = 2) -> None:
    from multiprocessing import Pool

    melodies()  # parse the music21 corpus once, before forking
    todo = [("test", i) for i in range(test)] + [("train", i) for i in range(train)]
    done = 0
    with Pool(jobs) as pool:
        for result in pool.imap_unordered(_work, todo, chunksize=4):
            done += 1
            if result.startswith("FAILED") or done % 25 == 0:
                print(f"[{done}/{len(todo)}] {result}", flush=True)
    print(f"corpus in {CORPUS}: {len(todo)} clips")
