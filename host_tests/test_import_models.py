"""Bring your own model: Demucs and Open-Unmix checkpoints imported through the CLI and
checked against the peers' own inference code.

No weights can be downloaded here, so the checkpoints are the peers' own architectures
with fixed random weights (small configurations, for speed), saved the way the peers
save them. The reference is always the peer's code: Demucs's whole-track normalisation
and ``demucs.apply.apply_model(shifts=0, split=True, overlap=0.25)``; Open-Unmix's
``Separator`` with ``niter=0``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import stemforge
from host_tests.helpers import STEMS, blocks, music, relative_error, run_cli, stream
from stemforge.core.stats import track_stats

RATE = 44100


def cli(*args) -> subprocess.CompletedProcess:
    return run_cli(*args, timeout=600)


# -- Demucs -----------------------------------------------------------------------------


def demucs_reference(checkpoint: Path, x: np.ndarray) -> np.ndarray:
    """What demucs.api / demucs.separate compute, with shifts=0: (stems, channels, n);
    the benchmark times the same function."""
    from bench.import_models import load_demucs, run_demucs

    return run_demucs(load_demucs(checkpoint), x)


@pytest.mark.parametrize("seconds", [3.3, 0.4, 2.0])
def test_demucs_offline_equals_demucs_apply_model(demucs_checkpoint, demucs_model, seconds):
    """Several overlapping chunks and a tail cut short; shorter than a segment; a whole
    number of segments."""
    x = music(seconds, seed=3)
    reference = demucs_reference(demucs_checkpoint, x)
    stems = stemforge.separate(x, RATE, demucs_model, residual=None)
    assert list(stems) == list(STEMS) and demucs_model.info.kind == "window"
    for i, name in enumerate(STEMS):
        assert stems[name].shape == x.shape
        assert relative_error(stems[name], reference[i]) < 1e-4, name


@pytest.mark.slow
def test_demucs_streams_as_offline_with_the_track_statistics(demucs_model):
    """Given the whole track's statistics, any chunking of process() gives the offline
    audio, and process_block gives it delayed by latency_samples, up to where the
    block stream goes on past the end (the last chunk then sees more than silence)."""
    x = music(3.3, seed=4)
    sep = stemforge.StemSeparator(demucs_model, stem="vocals", residual=None)
    offline = sep(x, RATE)
    sep.track_stats = track_stats(x)
    for sizes in ([7919], [1, 4096, 333], [RATE]):
        np.testing.assert_allclose(stream(sep, x, RATE, sizes), offline, atol=1e-6, rtol=0)
    sep.prepare(RATE, 2)
    assert sep.latency_samples == RATE - 1  # one segment, at 44.1 kHz
    head = x.shape[1] - RATE
    for block in (128, 512, 4096):
        y = blocks(sep, x, RATE, block)
        np.testing.assert_allclose(y[:, :head], offline[:, :head], atol=1e-6, rtol=0)


@pytest.mark.slow
def test_demucs_running_estimate_is_block_invariant_and_close(demucs_model):
    """Without the track's statistics a stream normalises each chunk by what it has
    seen; that does not depend on the blocking, and stays close to the offline result."""
    x = music(3.3, seed=5)
    sep = stemforge.StemSeparator(demucs_model, stem="drums", residual=None)
    offline = sep(x, RATE)
    streamed = [blocks(sep, x, RATE, b) for b in (256, 4096)]
    np.testing.assert_allclose(streamed[0], streamed[1], atol=1e-6, rtol=0)
    chunked = stream(sep, x, RATE, [1000, 77])
    head = x.shape[1] - RATE
    np.testing.assert_allclose(chunked[:, :head], streamed[0][:, :head], atol=1e-6, rtol=0)
    assert not np.allclose(chunked, offline, atol=1e-6)  # the estimate is an estimate
    assert relative_error(chunked, offline) < 0.5


def test_demucs_file_export_uses_the_whole_file(demucs_checkpoint, demucs_model, tmp_path):
    """The CLI reads a file twice for a model that normalises by the track: the stems
    are Demucs's own separation of the file."""
    from pedalboard.io import AudioFile

    x = music(2.5, seed=6)
    song = tmp_path / "song.wav"
    with AudioFile(str(song), "w", RATE, 2, bit_depth=32) as f:
        f.write(x)
    done = cli("separate", song, "-o", tmp_path / "stems", "-m", demucs_model.path, "-q")
    assert done.returncode == 0, done.stderr
    reference = demucs_reference(demucs_checkpoint, x)
    for i, name in enumerate(STEMS):
        with AudioFile(str(tmp_path / "stems" / "song" / f"{name}.wav")) as f:
            assert relative_error(f.read(f.frames), reference[i]) < 1e-4, name


def test_import_errors_are_clear_and_write_nothing(demucs_checkpoint, tmp_path, cli_here):
    junk = tmp_path / "junk.th"
    junk.write_bytes(b"not a checkpoint")
    out = tmp_path / "out.ts"
    done = cli_here("import-model", "demucs", junk, "-o", out)
    assert done.returncode == 1 and "not a Demucs checkpoint" in done.stderr
    assert not out.exists() and not list(tmp_path.glob(".*partial"))
    from demucs.hdemucs import HDemucs
    from demucs.states import get_state

    hdemucs = HDemucs(sources=list(STEMS), channels=4, segment=2)
    args, kwargs = hdemucs._init_args_kwargs
    torch.save(
        {"klass": HDemucs, "args": args, "kwargs": kwargs, "state": get_state(hdemucs, None), "training_args": {}},
        tmp_path / "hd.th",
    )
    done = cli_here("import-model", "demucs", tmp_path / "hd.th", "-o", out)
    assert done.returncode == 1 and "HTDemucs" in done.stderr and not out.exists()
    done = cli_here("import-model", "openunmix", tmp_path, "-o", out)
    assert done.returncode == 1 and "not an Open-Unmix model folder" in done.stderr
    out.write_bytes(b"mine")
    done = cli_here("import-model", "demucs", demucs_checkpoint, "-o", out)
    assert done.returncode == 2 and "--overwrite" in done.stderr and out.read_bytes() == b"mine"


def test_the_library_refuses_the_outputs_the_command_refuses(tmp_path, cli_here):
    """import_model refuses what `stemforge import-model` refuses, with the same message,
    before reading the checkpoint: not .ts, an existing file, the checkpoint itself."""
    from stemforge.importers import ImportRefused, import_model

    checkpoint = tmp_path / "model.th"
    checkpoint.write_bytes(b"not read")
    existing = tmp_path / "mine.ts"
    existing.write_bytes(b"mine")
    itself = tmp_path / "weights.ts"
    itself.write_bytes(b"the checkpoint")
    for source, out, message in [
        (checkpoint, tmp_path / "out.onnx", "end in .ts"),
        (checkpoint, existing, "--overwrite"),
        (itself, itself, "the checkpoint itself"),
    ]:
        with pytest.raises(ImportRefused, match=message) as refused:
            import_model("demucs", source, out, overwrite=source is itself)
        done = cli_here("import-model", "demucs", source, "-o", out, *(["--overwrite"] if source is itself else []))
        assert done.returncode == 2 and done.stderr == f"stemforge: {refused.value}\n"
    assert existing.read_bytes() == b"mine" and itself.read_bytes() == b"the checkpoint"
    assert not (tmp_path / "out.onnx").exists()


# -- Open-Unmix -------------------------------------------------------------------------


def umx_separator(folder: Path, targets):
    from stemforge.importers.openunmix import openunmix_utils

    separator = openunmix_utils().load_separator(str(folder), targets=list(targets), niter=0)
    separator.freeze()
    return separator


def umx_reference(separator, x: np.ndarray, window: int, hop: int) -> np.ndarray:
    """The peer's Separator over Demucs-style cross-faded windows, the last one ending
    at the end of the audio (stemforge's documented way to run a whole-excerpt BLSTM)."""
    from stemforge.core.engine import crossfade_weights

    n = x.shape[1]
    weights = crossfade_weights(window, 1.0)
    out = np.zeros((len(separator.target_models), 2, n))
    total = np.zeros(n)
    for offset in range(0, n, hop):
        chunk = x[:, offset : offset + window]
        with torch.no_grad():
            y = separator(torch.from_numpy(np.ascontiguousarray(chunk))[None])[0].numpy()
        length = chunk.shape[1]
        out[..., offset : offset + length] += weights[:length] * y
        total[offset : offset + length] += weights[:length]
        if offset + length >= n:
            break
    return out / total


@pytest.mark.parametrize("seconds", [1.2, 4.0])
def test_openunmix_offline_equals_its_separator(umx_folder, umx_model, seconds):
    """Within one window: one call of the peer's Separator on the whole excerpt.
    Longer: its Separator on cross-faded windows."""
    x = music(seconds, seed=7)
    separator = umx_separator(umx_folder, umx_model.stems)
    info = umx_model.info
    if x.shape[1] <= info.window:
        with torch.no_grad():
            reference = separator(torch.from_numpy(x)[None])[0].numpy()
    else:
        reference = umx_reference(separator, x, info.window, info.hop)
    stems = stemforge.separate(x, RATE, umx_model, residual=None)
    for i, name in enumerate(umx_model.stems):
        assert relative_error(stems[name], reference[i]) < 1e-4, name


def test_openunmix_streams_as_offline(umx_model):
    x = music(4.0, seed=8)
    sep = stemforge.StemSeparator(umx_model, stem="vocals", residual=None)
    offline = sep(x, RATE)
    np.testing.assert_allclose(stream(sep, x, RATE, [512, 3001]), offline, atol=1e-6, rtol=0)
    sep.prepare(RATE, 2)
    assert sep.latency_samples == umx_model.info.window - 1
    head = x.shape[1] - umx_model.info.window
    for block in (512, 4096):
        y = blocks(sep, x, RATE, block)
        np.testing.assert_allclose(y[:, :head], offline[:, :head], atol=1e-6, rtol=0)
