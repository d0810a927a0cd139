"""One model contract for both faces, proven equal.

plugin/stemforge/core/contract.json is the contract: read by stemforge.core.contract (Python)
and embedded into the VST3 engine (plugin/vst3/Source/Contract.h). Here the engine library is
loaded through its C interface (EngineApi.h, via ctypes), no host needed, and

- a table of good and bad metadata goes to both faces: they accept the same files and refuse
  the others with the same words;
- a differential test (hypothesis) draws metadata within the contract, host rates, channel
  counts and block sizes, and checks the engine's stems and latency against StemSeparator's.
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest
import torch

import stemforge
from stemforge.core import contract, native
from stemforge.core.native import ERROR_CHARS, EngineModelInfo, engine_library, rows

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

WHY = native.unavailable()
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"{WHY}")  # CI builds the plugin first


class Engine:
    """libstemforge_engine.so through EngineApi.h. The process has torch loaded already: the
    engine's libtorch is that one (the same sonames), as in any host that imported torch."""

    def __init__(self):
        self.lib = engine_library()

    def load(self, path: Path) -> Tuple[Optional[int], EngineModelInfo, str]:
        info, err = EngineModelInfo(), ctypes.create_string_buffer(ERROR_CHARS)
        model = self.lib.sf_model_load(str(path).encode(), ctypes.byref(info), err, ERROR_CHARS)
        return model, info, err.value.decode("utf-8", "replace")

    def run(
        self, model: int, rate: int, channels: int, stems: int, x: np.ndarray, sizes: List[int]
    ) -> Tuple[int, np.ndarray]:
        """(latency, (stems, channels, n) stems) of x through a fresh engine, in blocks of `sizes`."""
        err = ctypes.create_string_buffer(ERROR_CHARS)
        engine = self.lib.sf_engine_create(model, rate, channels, max(sizes), 0, 0, err, ERROR_CHARS)  # offline
        assert engine, err.value
        try:
            out = np.zeros((stems * channels, x.shape[1]), np.float32)
            dry = np.zeros((channels, max(sizes)), np.float32)
            pos, k = 0, 0
            while pos < x.shape[1]:
                n = min(sizes[k % len(sizes)], x.shape[1] - pos)
                block = np.ascontiguousarray(x[:, pos : pos + n])
                stem_out = np.zeros((stems * channels, n), np.float32)
                ins = rows(block)
                rc = self.lib.sf_engine_process(engine, ins, n, rows(stem_out), rows(dry), err, ERROR_CHARS)
                assert rc == 0, err.value
                out[:, pos : pos + n] = stem_out
                pos, k = pos + n, k + 1
            return self.lib.sf_engine_latency(engine), out.reshape(stems, channels, -1)
        finally:
            self.lib.sf_engine_free(engine)


@pytest.fixture(scope="module")
def engine():
    return Engine()


# ------------------------------------------------------------------------------- models
class Streaming(torch.nn.Module):
    """A streaming model with state: stem k is a_k * x[t] + b_k * x[t - 1], the previous sample
    carried across calls (chunk-invariant, as the contract requires of a streaming model)."""

    def __init__(self, stems: int, channels: int = 2):
        super().__init__()
        self.channels = channels
        self.register_buffer("a", torch.linspace(0.2, 1.0, stems).reshape(1, stems, 1, 1))
        self.register_buffer("b", torch.linspace(-0.5, 0.5, stems).reshape(1, stems, 1, 1))

    @torch.jit.export
    def initial_state(self, batch: int) -> List[torch.Tensor]:
        return [torch.zeros(batch, self.channels, 1)]

    def forward(self, x: torch.Tensor, state: List[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        previous = torch.cat([state[0], x[..., :-1]], dim=-1)
        y = self.a * x.unsqueeze(1) + self.b * previous.unsqueeze(1)
        return y, [x[..., -1:]]


class Windowed(torch.nn.Module):
    """A window model: stem k is a_k * x + b_k * (the window's mean) * (a ramp over the window)."""

    def __init__(self, stems: int):
        super().__init__()
        self.register_buffer("a", torch.linspace(0.2, 1.0, stems).reshape(1, stems, 1, 1))
        self.register_buffer("b", torch.linspace(-0.5, 0.5, stems).reshape(1, stems, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(0.0, 1.0, x.shape[-1]).reshape(1, 1, 1, -1)
        return self.a * x.unsqueeze(1) + self.b * x.mean(dim=-1, keepdim=True).unsqueeze(1) * ramp


def base_metadata(**changes) -> Dict:
    d = {
        "contract": contract.CONTRACT,
        "name": "table",
        "version": "1",
        "kind": "streaming",
        "sample_rate": 44100,
        "stems": ["drums", "bass", "other", "vocals"],
        "channels": 2,
        "lookahead": 0,
        "context": 0,
        "hop": 256,
        "window": 256,
        "sums_to_mix": False,
        "description": "a contract test",
        "training_data": "none",
        "license": "MIT",
        "untrained": True,
    }
    d.update(changes)
    return d


def write_model(path: Path, metadata) -> Path:
    """A model file with this metadata (a dict, or raw text); its module fits the metadata
    where the metadata can be read, so that only the metadata decides."""
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    try:
        d = json.loads(text)
    except ValueError:
        d = {}
    d = d if isinstance(d, dict) else {}
    stems = d.get("stems")
    count = len(stems) if isinstance(stems, list) and 0 < len(stems) <= 64 else 4
    channels = d.get("channels") if d.get("channels") in (1, 2) else 2
    module = Windowed(count) if d.get("kind") == "window" else Streaming(count, channels)
    torch.jit.save(torch.jit.script(module), str(path), _extra_files={contract.METADATA_FILE: text})
    return path


def python_face(path: Path) -> Optional[str]:
    try:
        stemforge.load_model(path)
    except stemforge.ModelError as e:
        return str(e).split(f"{path}: ", 1)[-1]
    return None


def engine_face(engine: Engine, path: Path) -> Optional[str]:
    model, _, err = engine.load(path)
    if model:
        engine.lib.sf_model_free(model)
        return None
    return err.split(f"{path}: ", 1)[-1]


# -------------------------------------------------------------------------- the table
W = {"kind": "window", "hop": 384, "window": 512}  # a window model's base
GOOD = [
    base_metadata(),
    base_metadata(stems=["vocals", "accompaniment"], channels=1, sample_rate=8000),
    base_metadata(stems=[f"s{i}" for i in range(16)], sample_rate=192000),
    base_metadata(**W, tail="center", padded_window=1024, overlap=0.25, transition_power=2.5),
    base_metadata(**W, tail="trim", input_normalization="track"),
    base_metadata(tail="pad", input_normalization="none"),  # the defaults, said on a streaming model
    base_metadata(unknown_field="ignored", hop=1, window=1),
    base_metadata(overlap=0, transition_power=0),
]
BAD = [
    ('{"contract": ', "stemforge.json is not valid JSON"),
    ('{"contract": "stemforge-model/1", "hop": NaN}', "stemforge.json is not valid JSON"),
    ("[1, 2]", "stemforge.json does not declare contract 'stemforge-model/1'"),
    (base_metadata(contract="other/9"), "stemforge.json does not declare contract 'stemforge-model/1'"),
    (base_metadata(stems=None), "metadata 'stems' must be a list of names"),
    ({k: v for k, v in base_metadata().items() if k != "hop"}, "metadata lacks 'hop'"),
    (base_metadata(sample_rate="44100"), "metadata 'sample_rate' must be an integer"),
    (base_metadata(sample_rate=44100.0), "metadata 'sample_rate' must be an integer"),
    (base_metadata(sample_rate=4000), "metadata 'sample_rate' must be at least 8000, got 4000"),
    (base_metadata(sample_rate=10**30), f"metadata 'sample_rate' must be at most 192000, got {10**30}"),
    (base_metadata(kind="magic"), "metadata 'kind' must be one of 'streaming', 'window', got 'magic'"),
    (base_metadata(channels=6), "metadata 'channels' must be one of 1, 2, got 6"),
    (base_metadata(channels=True), "metadata 'channels' must be an integer"),
    (base_metadata(sums_to_mix=1), "metadata 'sums_to_mix' must be true or false"),
    (base_metadata(stems=[]), "metadata 'stems' must name at least 1, got 0"),
    (base_metadata(stems=["a", "a"]), "metadata 'stems' must be distinct non-empty names"),
    (base_metadata(stems=["a", ""]), "metadata 'stems' must be distinct non-empty names"),
    (base_metadata(stems=["a", 3]), "metadata 'stems' must be distinct non-empty names"),
    (base_metadata(stems=[f"s{i}" for i in range(17)]), "metadata 'stems' must name at most 16, got 17"),
    (base_metadata(stems=["x" * 64]), "metadata 'stems': a name is at most 63 bytes (UTF-8), got 64"),
    (base_metadata(hop=0, window=0), "metadata 'hop' must be at least 1, got 0"),
    (base_metadata(lookahead=-1), "metadata 'lookahead' must be at least 0, got -1"),
    (base_metadata(window=128), "metadata 'window' must be at least 'hop' (256), got 128"),
    (base_metadata(tail="center"), "metadata 'tail' applies to window models only, got 'center' for a streaming model"),
    (
        base_metadata(input_normalization="track"),
        "metadata 'input_normalization' applies to window models only, got 'track' for a streaming model",
    ),
    (base_metadata(**W, tail=3), "metadata 'tail' must be a string"),
    (base_metadata(**W, tail="middle"), "metadata 'tail' must be one of 'pad', 'center', 'trim', got 'middle'"),
    (
        base_metadata(**W, tail="center", padded_window=256),
        "metadata 'padded_window' must be at least 'window' (512) when 'tail' is 'center', got 256",
    ),
    (base_metadata(**W, padded_window=1024.5), "metadata 'padded_window' must be an integer"),
    (base_metadata(**W, transition_power="2"), "metadata 'transition_power' must be a number"),
    (base_metadata(**W, transition_power=-1), "metadata 'transition_power' must be at least 0, got -1"),
    (base_metadata(**W, overlap=1.0), "metadata 'overlap' must be below 1, got 1"),
    (
        json.dumps(base_metadata(**W, overlap=0.5)).replace("0.5", "1e999"),  # a float beyond a double
        "metadata 'overlap' must be a number",
    ),
    (base_metadata(untrained="no"), "metadata 'untrained' must be true or false"),
]


@pytest.mark.parametrize("metadata", GOOD, ids=range(len(GOOD)))
def test_good_metadata_loads_in_both_faces(tmp_path, engine, metadata):
    path = write_model(tmp_path / "good.ts", metadata)
    assert python_face(path) is None
    assert engine_face(engine, path) is None
    _, info, _ = engine.load(path)  # the engine reads what Python reads
    model = stemforge.load_model(path)
    assert [info.stems[i].value.decode() for i in range(info.num_stems)] == list(model.stems)
    assert (info.kind.decode(), info.sample_rate, info.channels, info.hop, info.window, info.lookahead) == (
        model.info.kind,
        model.info.sample_rate,
        model.info.channels,
        model.info.hop,
        model.info.window,
        model.info.lookahead,
    )


@pytest.mark.parametrize("metadata,message", BAD, ids=range(len(BAD)))
def test_bad_metadata_is_refused_alike_by_both_faces(tmp_path, engine, metadata, message):
    path = write_model(tmp_path / "bad.ts", metadata)
    python, cpp = python_face(path), engine_face(engine, path)
    assert python is not None and python.startswith(message), python
    assert cpp is not None and cpp.startswith(message), cpp
    if "not valid JSON" not in message:  # the JSON readers word their syntax errors their own way
        assert python == cpp


def test_the_contract_names_every_field_of_model_info_and_every_engine():
    from dataclasses import fields

    from stemforge.core.engine import ENGINES

    assert [f["name"] for f in contract.FIELDS] == [f.name for f in fields(stemforge.ModelInfo)]
    assert contract.FIELD["kind"]["one_of"] == list(ENGINES)


# ------------------------------------------------------------------- the differential test
NAMES = ("drums", "bass", "other", "vocals", "piano", "guitar", "accompaniment")


@st.composite
def metadata_within_the_contract(draw) -> Dict:
    kind = draw(st.sampled_from(["streaming", "window"]))
    hop = draw(st.integers(16, 1024))
    d = base_metadata(
        kind=kind,
        hop=hop,
        window=hop,
        sample_rate=draw(st.sampled_from([16000, 22050, 44100, 48000])),
        channels=draw(st.sampled_from([1, 2])),
        stems=draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True)),
        lookahead=draw(st.integers(0, 2 * hop)),
        context=draw(st.integers(0, 4096)),
        sums_to_mix=draw(st.booleans()),
    )
    if kind == "window":
        d["window"] = hop + draw(st.integers(0, 3 * hop))
        d["tail"] = draw(st.sampled_from(["pad", "center", "trim"]))
        if d["tail"] == "center":
            d["padded_window"] = d["window"] + draw(st.integers(0, hop))
        d["transition_power"] = draw(st.sampled_from([0.5, 1.0, 2.0]))
        d["input_normalization"] = draw(st.sampled_from(["none", "track"]))
    return d


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    metadata=metadata_within_the_contract(),
    rate=st.sampled_from([22050, 44100, 48000, 96000]),
    channels=st.sampled_from([1, 2]),
    sizes=st.lists(st.integers(1, 1500), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
)
def test_engine_equals_python_on_metadata_within_the_contract(
    tmp_path_factory, engine, metadata, rate, channels, sizes, seed
):
    path = write_model(tmp_path_factory.mktemp("diff") / "m.ts", metadata)
    model = stemforge.load_model(path)
    handle, info, err = engine.load(path)
    assert handle, err
    try:
        x = (np.random.default_rng(seed).standard_normal((channels, int(0.3 * rate))) * 0.1).astype(np.float32)
        latency, stems = engine.run(handle, rate, channels, info.num_stems, x, sizes)
    finally:
        engine.lib.sf_model_free(handle)
    for k, name in enumerate(model.stems):
        sep = stemforge.StemSeparator(model, stem=name, residual=None)
        sep.prepare(rate, channels)
        assert sep.latency_samples == latency, (name, sep.latency_samples, latency)
        out, pos, i = [], 0, 0
        while pos < x.shape[1]:
            n = min(sizes[i % len(sizes)], x.shape[1] - pos)
            out.append(sep.process_block(x[:, pos : pos + n], rate))
            pos, i = pos + n, i + 1
        y = np.concatenate(out, axis=1)
        np.testing.assert_allclose(stems[k], y, atol=2e-5, err_msg=f"stem {name}")
