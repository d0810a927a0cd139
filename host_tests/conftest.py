"""Shared fixtures: the UNTRAINED fixture models built by build.py, and test signals.

The fixture models have random weights: their stems are not a separation,
but they run the whole contract (STFT, masks that sum to one, streaming
state, fixed windows, mono models, another sample rate), which is what these
tests are about.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
sys.path.insert(0, str(ROOT / "bench"))
from signals import music  # noqa: E402,F401  (shared with the benchmarks)
FIXTURES = ("fixture-stream", "fixture-window", "fixture-mono-22k")


@functools.lru_cache(maxsize=None)
def loaded_model(name_or_path: str):
    """stemforge.load_model, once per run for each name or path (a load reads the file and
    checks the model on a test input). Processors built on one model keep their own state."""
    import stemforge
    return stemforge.load_model(name_or_path)


@pytest.fixture(scope="session")
def models():
    return {name: loaded_model(str(MODELS / f"{name}.ts")) for name in FIXTURES}


@pytest.fixture(scope="session")
def stream_model(models):
    return models["fixture-stream"]


@pytest.fixture(scope="session")
def presets():
    """The shipped presets, loaded once for the whole run."""
    return {name: loaded_model(str(MODELS / f"{name}.ts")) for name in ("studio", "live")}


@pytest.fixture(scope="session")
def live(presets):
    return presets["live"]


def db(residual: np.ndarray, reference: np.ndarray) -> float:
    """Energy of `residual` relative to `reference`, in dB."""
    return 10 * np.log10((np.sum(np.square(residual, dtype=np.float64)) + 1e-30)
                         / np.sum(np.square(reference, dtype=np.float64)))


def stream(processor, x: np.ndarray, sample_rate: int, sizes) -> np.ndarray:
    """Feed (channels, samples) `x` through process(reset=False) in chunks of `sizes`
    (cycled), then flush; return the concatenated output."""
    processor.reset()
    processor.prepare(sample_rate, x.shape[0]) if hasattr(processor, "prepare") else None
    outs, i, k = [], 0, 0
    while i < x.shape[1]:
        size = sizes[k % len(sizes)]
        outs.append(processor.process(x[:, i:i + size], sample_rate, reset=False))
        i, k = i + size, k + 1
    outs.append(processor.flush())
    return np.concatenate([o for o in outs if o.size], axis=1)


def blocks(processor, x: np.ndarray, sample_rate: int, block: int) -> np.ndarray:
    """Run process_block over x followed by enough silence, and undo the reported latency."""
    processor.prepare(sample_rate, x.shape[0])
    latency = processor.latency_samples
    padded = np.concatenate([x, np.zeros((x.shape[0], latency + block), np.float32)], axis=1)
    out = [processor.process_block(padded[:, i:i + block], sample_rate)
           for i in range(0, padded.shape[1], block)]
    for o, i in zip(out, range(0, padded.shape[1], block)):
        assert o.shape == padded[:, i:i + block].shape
    return np.concatenate(out, axis=1)[:, latency:latency + x.shape[1]]


def run_cli(*args, cwd=None) -> "subprocess.CompletedProcess":
    """`stemforge ARGS...` as a subprocess, as a user runs it."""
    import subprocess
    return subprocess.run([sys.executable, "-m", "stemforge", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.fixture
def cli_here(capfd, monkeypatch):
    """`stemforge ARGS...` run by main() in this process, as `python -m stemforge` runs it:
    the same exit status, stdout and stderr, without a new interpreter's start-up (importing
    torch: about 3 s of CPU each time). For the options, plans and inputs refused before any
    work; what does work runs as a subprocess (run_cli). An exception main() lets escape,
    which a user would see as a traceback, fails the test that called it."""
    import subprocess
    from stemforge.cli import main

    def run(*args, cwd=None) -> subprocess.CompletedProcess:
        argv = [str(a) for a in args]
        with monkeypatch.context() as m:
            if cwd is not None:
                m.chdir(cwd)
            capfd.readouterr()
            try:
                code = main(argv)
            except SystemExit as e:  # argparse's errors, --help and --version
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            out, err = capfd.readouterr()
        return subprocess.CompletedProcess(["stemforge", *argv], code or 0, out, err)
    return run


sys.path.insert(0, str(Path(__file__).parent))
