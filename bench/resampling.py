"""python -m bench.resampling [MODEL]: soxr recipes for real time, measured (docs/performance.md,
"Resampling in real time").

For each recipe pair (host -> model, model -> host) at 48 and 96 kHz: each resampler's worst
hold-back (the most output samples a fresh stream owes, fed one sample at a time for 0.5 s,
as `StreamResampler.worst_holdback`), the model's latency bound as `Pipeline.latency`
computes it, and the SDR of the host -> model rate -> host round trip against soxr HQ's, on
`signals.music` and on audio-band pink noise (4 s stereo). Then, for QQ, LQ and HQ: pure
tones (passband droop, aliasing and images), the time per 128-sample block, and the model's
separation SDR on 30 s of the held-out demo (models/demo/stems) resampled to 48 and 96 kHz
through StemSeparator with each `resampling`.

`python -m bench.resampling MODEL --held-out [N]`: instead, the model's SDR on the first N
rendered held-out clips and N excerpts of the real held-out set (bench/real_sets.py), each
resampled (soxr VHQ) to 48 and 96 kHz and separated there, beside the same clips at the
model's own 44.1 kHz, where no resampler runs (issue 12: real time at every rate may cost at
most 0.5 dB against 44.1 kHz).

The phase variants are not in python-soxr's public API (ResampleStream accepts only the
QQ..VHQ names); they go to libsoxr through python-soxr's extension as raw recipe bits
(soxr.h: SOXR_INTERMEDIATE_PHASE 0x10, SOXR_MINIMUM_PHASE 0x30).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from soxr import soxr_ext

from bench.signals import music

RECIPES = {
    "QQ": 0,
    "LQ": 1,
    "MQ": 2,
    "HQ": 4,
    "VHQ": 6,
    "HQ-minimum-phase": 4 | 0x30,
    "HQ-intermediate-phase": 4 | 0x10,
    "LQ-minimum-phase": 1 | 0x30,
}
PAIRS = [
    ("HQ", "HQ"),
    ("VHQ", "VHQ"),
    ("MQ", "MQ"),
    ("LQ", "LQ"),
    ("HQ-minimum-phase",) * 2,
    ("HQ-intermediate-phase",) * 2,
    ("LQ-minimum-phase",) * 2,
    ("QQ", "QQ"),
    ("QQ", "LQ"),
]
HOSTS = (48000, 96000)


def _stream(in_rate: int, out_rate: int, channels: int, recipe: str):
    return soxr_ext.CSoxr(in_rate, out_rate, channels, soxr_ext.SOXR_FLOAT32_I, RECIPES[recipe], False)


def holdback(in_rate: int, out_rate: int, recipe: str, seconds: float = 0.5) -> float:
    s, one = _stream(in_rate, out_rate, 1, recipe), np.zeros((1, 1), np.float32)
    ratio, got, worst = out_rate / in_rate, 0, 0.0
    for n in range(1, int(seconds * in_rate) + 1):
        got += len(s.process_float32(one, False))
        worst = max(worst, n * ratio - got)
    return worst


def whole(x: np.ndarray, in_rate: int, out_rate: int, recipe: str) -> np.ndarray:
    """(channels, n) through one stream and its flush: this recipe's offline result."""
    s = _stream(in_rate, out_rate, x.shape[0], recipe)
    y = [
        s.process_float32(np.ascontiguousarray(x.T), False),
        s.process_float32(np.zeros((0, x.shape[0]), np.float32), True),
    ]
    return np.concatenate(y).T


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    n = min(reference.shape[-1], estimate.shape[-1])
    err = np.sum((reference[..., :n] - estimate[..., :n]) ** 2)
    return float("inf") if err == 0 else 10 * np.log10(np.sum(reference[..., :n] ** 2) / err)


def pink(seconds: float, rate: int, seed: int = 3) -> np.ndarray:
    """Stereo pink noise band-limited to 20 kHz: a mix's spectrum, top octave included."""
    n = int(seconds * rate)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal((2, n)))
    f = np.fft.rfftfreq(n, 1 / rate)
    f[0] = f[1]
    spectrum /= np.sqrt(f)
    spectrum[:, f > 20000] = 0
    y = np.fft.irfft(spectrum, n)
    return (0.2 * y / np.abs(y).max()).astype(np.float32)


def main() -> None:
    import stemforge
    from stemforge.core.engine import ENGINES

    info = stemforge.load_model(sys.argv[1] if len(sys.argv) > 1 else "live").info
    model_rate, engine_delay = info.sample_rate, ENGINES[info.kind].delay_for(info)
    signals = {h: {"music": music(4.0, h, 2, seed=1), "pink": pink(4.0, h)} for h in HOSTS}

    def round_trip(x, host, pair):
        return whole(whole(x, host, model_rate, pair[0]), model_rate, host, pair[1])

    reference = {h: {k: round_trip(x, h, ("HQ", "HQ")) for k, x in signals[h].items()} for h in HOSTS}
    print(f"{info.name}: {engine_delay} model samples of its own at {model_rate} Hz")
    print(
        "| recipe in / out | hold-back in / out, 48 kHz | 96 kHz | latency 48 kHz | 96 kHz "
        "| SDR vs HQ, music 48 / 96 kHz | pink 48 / 96 kHz |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for pair in PAIRS:
        held, latency, music_sdr, pink_sdr = [], [], [], []
        for h in HOSTS:
            h_in, h_out = holdback(h, model_rate, pair[0]), holdback(model_rate, h, pair[1])
            held.append(f"{h_in:.1f} / {h_out:.1f}")
            samples = int(np.ceil((h_in + engine_delay) * h / model_rate + h_out))
            latency.append(f"{samples} ({1000 * samples / h:.1f} ms)")
            music_sdr.append(sdr(reference[h]["music"], round_trip(signals[h]["music"], h, pair)))
            pink_sdr.append(sdr(reference[h]["pink"], round_trip(signals[h]["pink"], h, pair)))
        print(
            f"| {' / '.join(pair)} | {held[0]} | {held[1]} | {latency[0]} | {latency[1]} | "
            f"{music_sdr[0]:.1f} / {music_sdr[1]:.1f} dB | {pink_sdr[0]:.1f} / {pink_sdr[1]:.1f} dB |",
            flush=True,
        )

    tones()
    cost()
    separation(info.name)


def _tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None]


def _level(y: np.ndarray, rate: int, freq: float) -> float:
    """dB of y's component at `freq` against a full 0.5-amplitude sine of the same length."""
    n = y.shape[1]
    w = np.hanning(n)
    f = np.fft.rfftfreq(n, 1 / rate)
    power = np.abs(np.fft.rfft(y[0] * w)) ** 2
    full = np.sum(np.abs(np.fft.rfft(_tone(1000, rate, n / rate)[0] * w)) ** 2)
    return 10 * np.log10(power[np.abs(f - freq) < 30].sum() / full + 1e-20)


def tones() -> None:
    cases = [
        ("48k->44.1k 10 kHz", 48000, 44100, 10000, 10000),
        ("48k->44.1k 18 kHz", 48000, 44100, 18000, 18000),
        ("44.1k->48k 18 kHz", 44100, 48000, 18000, 18000),
        ("48k->44.1k 23 kHz alias at 21.1", 48000, 44100, 23000, 21100),
        ("96k->44.1k 30 kHz alias at 14.1", 96000, 44100, 30000, 14100),
        ("44.1k->96k 15 kHz image at 29.1", 44100, 96000, 15000, 29100),
    ]
    print("\n| recipe | " + " | ".join(c[0] for c in cases) + " |")
    print("| --- |" + " --- |" * len(cases))
    for recipe in ("QQ", "LQ", "HQ"):
        levels = [_level(whole(_tone(f, a), a, b, recipe), b, at) for _, a, b, f, at in cases]
        print(f"| {recipe} | " + " | ".join(f"{v:.2f} dB" for v in levels) + " |")


def cost(block: int = 128, seconds: float = 20.0) -> None:
    import time

    from stemforge.core.resample import StreamResampler

    x = np.random.default_rng(0).standard_normal((2, int(48000 * seconds))).astype(np.float32) * 0.1
    print(f"\ntime per {block}-sample stereo block (mean / p99, microseconds):")
    for recipe in ("QQ", "LQ", "HQ"):
        row = []
        for a, b in ((48000, 44100), (44100, 48000)):
            r, t = StreamResampler(a, b, 2, recipe), []
            for k in range(0, x.shape[1] - block, block):
                t0 = time.perf_counter()
                r.push(x[:, k : k + block])
                t.append(time.perf_counter() - t0)
            t = np.array(t) * 1e6
            row.append(f"{a}->{b} {t.mean():.1f} / {np.percentile(t, 99):.1f}")
        print(f"  {recipe}: " + ", ".join(row))


def separation(model: str, seconds: float = 30.0) -> None:
    import soxr
    from pedalboard.io import AudioFile

    import stemforge

    root = Path(__file__).resolve().parents[1] / "models" / "demo" / "stems"
    names = ("drums", "bass", "other", "vocals")
    stems = []
    for name in names:
        with AudioFile(str(root / f"{name}.flac")) as f:
            stems.append(f.read(min(f.frames, int(seconds * f.samplerate))))
            native = f.samplerate
    stems = np.stack(stems)
    sep_model = stemforge.load_model(model)
    print(f"\n{model} on {seconds:g} s of the held-out demo, SDR per stem (dB):")
    for rate in (native, 48000, 96000):
        truth = (
            stems
            if rate == native
            else np.stack([soxr.resample(s.T, native, rate, "VHQ").T for s in stems]).astype(np.float32)
        )
        mix = truth.sum(0)
        for resampling in ("hq", "low-delay"):
            scores = [
                sdr(
                    truth[k], stemforge.StemSeparator(sep_model, stem=name, threads=1, resampling=resampling)(mix, rate)
                )
                for k, name in enumerate(names)
            ]
            print(
                f"  {rate} Hz {resampling:9s} "
                + " ".join(f"{n} {v:.2f}" for n, v in zip(names, scores))
                + f" mean {np.mean(scores):.2f}",
                flush=True,
            )


def held_out(model: str, count: int = 20) -> None:
    import soxr

    import stemforge
    from bench.real_sets import excerpts
    from models.corpus import CORPUS, STEMS, load_clip
    from stemforge.apps.evaluate import global_sdr

    sep_model = stemforge.load_model(model)
    native = sep_model.sample_rate
    rendered = [dict(zip(STEMS, load_clip(p))) for p in sorted((CORPUS / "test").glob("clip-*.npz"))[:count]]
    real = [refs for _, _, refs, _ in excerpts(count)]
    print(
        f"\n{model}: global SDR (dB) at each host rate, mean over the parts each example has "
        f"({len(rendered)} rendered held-out clips, {len(real)} real held-out excerpts)"
    )
    print(
        "| set | host rate | resampling | drums | bass | other | vocals | accompaniment | mean of stems | vocals vs 44.1 kHz |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, examples in (("rendered", rendered), ("real", real)):
        base = None
        for rate, resampling in ((native, "low-delay"), (48000, "low-delay"), (48000, "hq"), (96000, "low-delay")):
            scores = {p: [] for p in ("drums", "bass", "other", "vocals", "accompaniment")}
            for refs in examples:
                refs = {k: v for k, v in refs.items() if float(np.abs(v).max()) >= 1e-4}
                if rate != native:
                    refs = {k: soxr.resample(v.T, native, rate, "VHQ").T.astype(np.float32) for k, v in refs.items()}
                mix = sum(refs.values()).astype(np.float32)
                # One pass gives every stem; the test suite asserts that it equals what
                # StemSeparator.process_block streams through the same resamplers.
                est = stemforge.separate(mix, rate, sep_model, threads=1, resampling=resampling)
                est["accompaniment"] = est["drums"] + est["bass"] + est["other"]
                for k, ref in refs.items():
                    scores[k].append(global_sdr(ref, est[k]))
            means = {k: float(np.mean(v)) if v else float("nan") for k, v in scores.items()}
            stem_mean = float(np.nanmean([means[s] for s in STEMS]))
            base = means["vocals"] if base is None else base
            cells = " | ".join("-" if np.isnan(v) else f"{v:.2f}" for v in means.values())
            print(
                f"| {label} | {rate} | {resampling} | {cells} | {stem_mean:.2f} | {means['vocals'] - base:+.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    if "--held-out" in sys.argv:
        args = [a for a in sys.argv[1:] if a != "--held-out"]
        held_out(args[0] if args else "live", int(args[1]) if len(args) > 1 else 20)
    else:
        main()
