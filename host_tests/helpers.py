"""What the tests share besides fixtures (those are in conftest.py): paths, the stem names,
the test signal, level and SDR measures, and ways to feed a processor or run the CLI."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.signals import music  # noqa: F401  (the benchmarks' test signal, one definition)

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
FIXTURES = ("fixture-stream", "fixture-window", "fixture-mono-22k")
STEMS = ("drums", "bass", "other", "vocals")


@functools.lru_cache(maxsize=None)
def loaded_model(name_or_path: str):
    """stemforge.load_model, once per run for each name or path (a load reads the file and
    checks the model on a test input). Processors built on one model keep their own state."""
    import stemforge

    return stemforge.load_model(name_or_path)


def db(residual: np.ndarray, reference: np.ndarray) -> float:
    """Energy of `residual` relative to `reference`, in dB."""
    return 10 * np.log10(
        (np.sum(np.square(residual, dtype=np.float64)) + 1e-30) / np.sum(np.square(reference, dtype=np.float64))
    )


def sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Global SDR in dB (the MDX measure, without its epsilon), computed in float64."""
    reference = np.asarray(reference, np.float64)
    return -db(reference - np.asarray(estimate, np.float64), reference)


def relative_error(estimate: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(estimate - reference) / np.linalg.norm(reference))


def stream(processor, x: np.ndarray, sample_rate: int, sizes) -> np.ndarray:
    """Feed (channels, samples) `x` through process(reset=False) in chunks of `sizes`
    (cycled), then flush; return the concatenated output."""
    processor.reset()
    processor.prepare(sample_rate, x.shape[0]) if hasattr(processor, "prepare") else None
    outs, i, k = [], 0, 0
    while i < x.shape[1]:
        size = sizes[k % len(sizes)]
        outs.append(processor.process(x[:, i : i + size], sample_rate, reset=False))
        i, k = i + size, k + 1
    outs.append(processor.flush())
    return np.concatenate([o for o in outs if o.size], axis=1)


def stream_network(net, x, sizes=(64, 192, 128, 64, 512)):
    """A streaming network (MaskNet's contract) run over torch tensor `x` in blocks of `sizes`
    samples (multiples of its hop), then the rest in one call: the output, concatenated."""
    import torch

    with torch.no_grad():
        state, parts, start = net.initial_state(x.shape[0]), [], 0
        for size in (*sizes, x.shape[-1] - sum(sizes)):
            part, state = net(x[..., start : start + size], state)
            parts.append(part)
            start += size
    return torch.cat(parts, dim=-1)


def assert_streams_and_sums(net, x, sizes=(64, 192, 128, 64, 512)) -> None:
    """A streaming network run block by block (`sizes`, as stream_network) equals one call, and
    its stems sum to the input delayed by exactly its reported lookahead."""
    import torch

    with torch.no_grad():
        whole, _ = net(x, net.initial_state(x.shape[0]))
    assert torch.allclose(stream_network(net, x, sizes), whole, atol=1e-5)
    delay = net.lookahead_samples
    assert torch.allclose(whole.sum(1)[..., delay:], x[..., : x.shape[-1] - delay], atol=1e-5)


def assert_scales_and_scripts(net, x) -> None:
    """A streaming network's output scales with its input, and TorchScript computes the same."""
    import torch

    scripted = torch.jit.script(net)
    with torch.no_grad():
        y, _ = net(x, net.initial_state(x.shape[0]))
        loud, _ = net(8.0 * x, net.initial_state(x.shape[0]))
        ys, _ = scripted(x, scripted.initial_state(x.shape[0]))
    assert torch.allclose(loud, 8.0 * y, atol=1e-4)
    assert torch.allclose(ys, y, atol=1e-6)


def blocks(processor, x: np.ndarray, sample_rate: int, block: int) -> np.ndarray:
    """Run process_block over x followed by enough silence, and undo the reported latency."""
    processor.prepare(sample_rate, x.shape[0])
    latency = processor.latency_samples
    padded = np.concatenate([x, np.zeros((x.shape[0], latency + block), np.float32)], axis=1)
    out = [processor.process_block(padded[:, i : i + block], sample_rate) for i in range(0, padded.shape[1], block)]
    for o, i in zip(out, range(0, padded.shape[1], block)):
        assert o.shape == padded[:, i : i + block].shape
    return np.concatenate(out, axis=1)[:, latency : latency + x.shape[1]]


def run_cli(*args, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`stemforge ARGS...` as a subprocess, as a user runs it (`timeout`: a guard against a
    hang, not a measure)."""
    return subprocess.run(
        [sys.executable, "-m", "stemforge", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def untrained_streaming_info(name: str, description: str, stems: tuple = STEMS):
    """The metadata of a small hand-written streaming test model (44.1 kHz stereo, hop 256,
    no lookahead): an untrained fixture, saved with stemforge.io.model_files.save_model."""
    from stemforge.core.contract import ModelInfo

    return ModelInfo(
        name=name,
        version="1",
        kind="streaming",
        sample_rate=44100,
        stems=tuple(stems),
        channels=2,
        lookahead=0,
        context=0,
        hop=256,
        window=256,
        sums_to_mix=True,
        description=description,
        training_data="none",
        license="MIT",
        untrained=True,
    )


def run_realtime(sep, x: np.ndarray, rate: int, block: int, keep_up=True, before_block=None) -> np.ndarray:
    """sep.process_block over x and enough silence, the latency undone. With keep_up (or where
    keep_up(i) holds for the block at i) the model's worker finishes every hop between blocks
    (a machine fast enough, whichever engine); before_block(i) runs before the block at i."""
    latency = sep.latency_samples
    padded = np.concatenate([x, np.zeros((x.shape[0], latency + block), np.float32)], axis=1)
    out = []
    for i in range(0, padded.shape[1], block):
        if before_block is not None:
            before_block(i)
        out.append(sep.process_block(padded[:, i : i + block], rate))
        assert out[-1].shape == padded[:, i : i + block].shape and out[-1].dtype == np.float32
        if keep_up is True or callable(keep_up) and keep_up(i):
            assert sep.wait_idle(timeout=60)
    return np.concatenate(out, axis=1)[:, latency : latency + x.shape[1]]
