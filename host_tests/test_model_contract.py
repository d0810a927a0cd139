"""The model contract: what a model file carries, and load-time errors that name the file."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

import stemforge
from host_tests.helpers import FIXTURES, MODELS, ROOT
from stemforge.core.contract import METADATA_FILE, ModelInfo
from stemforge.io.model_files import save_model


def test_fixture_models_carry_their_metadata(models):
    stream, window, mono = (models[n] for n in FIXTURES)
    for m in (stream, window, mono):
        assert m.stems == ("drums", "bass", "other", "vocals")
        assert m.info.untrained and "UNTRAINED" in m.info.description
        assert m.info.license and m.info.training_data and m.info.version
        assert "UNTRAINED" in repr(m)
    assert (stream.name, stream.kind, stream.sample_rate, stream.channels) == ("fixture-stream", "streaming", 44100, 2)
    assert stream.info.hop == 256 and stream.info.lookahead == 1024 - 256 + 2 * 256
    assert stream.info.context > 0
    assert (window.kind, window.info.window, window.info.hop, window.info.overlap) == ("window", 8192, 6144, 0.25)
    assert (mono.sample_rate, mono.channels) == (22050, 1)


def test_load_by_name_and_by_path_give_the_same_model(stream_model):
    by_name = stemforge.load_model("fixture-stream")
    assert by_name.path.resolve() == (MODELS / "fixture-stream.ts").resolve()
    assert by_name.info == stream_model.info


def test_default_model_is_never_an_untrained_fixture():
    try:
        model = stemforge.load_model()
    except stemforge.ModelError as e:
        assert "No trained default model" in str(e) and "fixture-stream" in str(e)
    else:
        assert not model.info.untrained


def _metadata(**changes) -> ModelInfo:
    base = stemforge.load_model("fixture-stream").info
    return ModelInfo(**{**base.__dict__, **changes})


class WrongShape(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x  # (B, C, T): lacks the stems axis


class Broken(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, 7, 3)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_text("not a model"), "not a TorchScript model file"),
        (lambda p: torch.save({"weights": torch.zeros(3)}, p), "torch.jit.load cannot read it"),
        (lambda p: torch.jit.save(torch.jit.script(WrongShape()), str(p)), "no stemforge.json metadata"),
        (
            lambda p: save_model(WrongShape(), _metadata(kind="window", window=512, hop=384), p),
            "returns shape (1, 2, 512), the contract needs (1, 4, 2, 512)",
        ),
        (
            lambda p: save_model(Broken(), _metadata(kind="window", window=512, hop=384), p),
            "the model failed on a test input",
        ),
        (lambda p: save_model(WrongShape(), _metadata(kind="streaming"), p), "must export initial_state"),
    ],
)
def test_bad_model_files_are_refused_at_load_time_naming_the_file(tmp_path, make, message):
    path = tmp_path / "bad.ts"
    make(path)
    with pytest.raises(stemforge.ModelError) as e:
        stemforge.load_model(path)
    assert str(path) in str(e.value) and message in str(e.value)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("stems"), "lacks 'stems'"),
        (lambda d: d.update(sample_rate="44100"), "'sample_rate' must be an integer"),
        (lambda d: d.update(kind="magic"), "'kind' must be one of"),
        (lambda d: d.update(channels=6), "'channels' must be one of 1, 2, got 6"),
        (lambda d: d.update(contract="other/9"), "does not declare contract"),
    ],
)
def test_incomplete_metadata_is_refused(tmp_path, edit, message):
    src = MODELS / "fixture-stream.ts"
    archive = zipfile.ZipFile(src)
    meta = json.loads(archive.read(next(n for n in archive.namelist() if n.endswith(f"/extra/{METADATA_FILE}"))))
    edit(meta)
    module = torch.jit.load(str(src))
    path = tmp_path / "edited.ts"
    torch.jit.save(module, str(path), _extra_files={METADATA_FILE: json.dumps(meta)})
    with pytest.raises(stemforge.ModelError, match=message):
        stemforge.load_model(path)


def test_unknown_name_lists_where_it_looked():
    with pytest.raises(stemforge.ModelError, match="'no-such-model' not found"):
        stemforge.load_model("no-such-model")
    with pytest.raises(stemforge.ModelError, match="no such model file"):
        stemforge.load_model("missing/model.ts")


@pytest.mark.slow
def test_build_is_deterministic_and_the_committed_files_are_current(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "build.py"), "--out", str(tmp_path)], check=True, capture_output=True)
    listed = subprocess.run(
        [sys.executable, str(ROOT / "build.py"), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    assert set(FIXTURES) <= set(listed)
    for name in listed:
        assert (tmp_path / f"{name}.ts").read_bytes() == (MODELS / f"{name}.ts").read_bytes(), (
            f"models/{name}.ts differs from what build.py builds: run python build.py"
        )


def test_a_model_serves_several_processors_independently(stream_model):
    x = np.random.default_rng(3).standard_normal((2, 9000)).astype(np.float32) * 0.1
    a = stemforge.StemSeparator(stream_model, stem="vocals")
    b = stemforge.StemSeparator(stream_model, stem="drums")
    a.prepare(44100, 2)
    b.prepare(44100, 2)
    interleaved_a, interleaved_b = [], []
    for i in range(0, 9000, 1000):  # two streams through one model, interleaved
        interleaved_a.append(a.process(x[:, i : i + 1000], 44100, reset=False))
        interleaved_b.append(b.process(x[:, i : i + 1000], 44100, reset=False))
    interleaved_a.append(a.flush())
    interleaved_b.append(b.flush())
    np.testing.assert_allclose(np.concatenate(interleaved_a, 1), a(x, 44100), atol=1e-6)
    np.testing.assert_allclose(np.concatenate(interleaved_b, 1), b(x, 44100), atol=1e-6)


def test_a_kind_without_an_engine_is_an_error_naming_the_known_kinds(stream_model):
    from dataclasses import replace

    from stemforge.core.engine import make_engine
    from stemforge.core.loading import Model

    odd = Model(stream_model._module, replace(stream_model.info, kind="spectral"), stream_model.path)
    with pytest.raises(stemforge.ModelError, match="kind 'spectral'; the known kinds are streaming, window"):
        make_engine(odd, 1)


def test_the_engine_table_runs_exactly_the_contracts_kinds():
    """contract.json's kinds are the ones a model file may declare; core/engine.py checks at
    import that ENGINES runs each of them and nothing else, so a kind added to the contract
    alone stops the package with a message rather than a model at load."""
    from stemforge.core.contract import FIELD, KINDS
    from stemforge.core.engine import ENGINES, check_engines

    assert KINDS == tuple(FIELD["kind"]["one_of"]) and set(ENGINES) == set(KINDS)
    check_engines(ENGINES, KINDS)
    with pytest.raises(RuntimeError, match=r"no engine for \['spectral'\], not in the contract: none"):
        check_engines(ENGINES, (*KINDS, "spectral"))
    with pytest.raises(RuntimeError, match=r"no engine for none, not in the contract: \['window'\]"):
        check_engines(ENGINES, ("streaming",))
