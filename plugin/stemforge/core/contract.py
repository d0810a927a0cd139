"""The model contract as data: contract.json, beside this module, read by every face.

The same file is embedded into the VST3 engine when it is built (plugin/vst3/CMakeLists.txt),
whose checker walks the same tables in the same order and words its refusals from the same
messages; host_tests/test_contract.py feeds both the same metadata. This module checks a
model file's ``stemforge.json`` against the tables and returns it with the defaults filled in,
and holds what the checks give: `ModelInfo`, a model's metadata, and `ModelError`. It imports
no torch, so that io (which writes model files) and the importers name a model's metadata
without importing the engines or the loading seam.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

SPEC_PATH = Path(__file__).with_name("contract.json")
SPEC: Dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
CONTRACT: str = SPEC["contract"]
METADATA_FILE: str = SPEC["metadata_file"]
FIELDS: List[Dict[str, Any]] = SPEC["fields"]
FIELD = {f["name"]: f for f in FIELDS}
RESAMPLING: Dict[str, Any] = SPEC["resampling"]
KINDS: Tuple[str, ...] = tuple(FIELD["kind"]["one_of"])  # core/engine.py's ENGINES runs each


class ContractError(ValueError):
    """Metadata that breaks the contract; the message is the contract's wording."""


def _message(key: str, **values: Any) -> str:
    return SPEC["messages"][key].format(**values)


def show(value: Any) -> str:
    """A value as both faces print it: integers in full, numbers as %g, strings quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return f"'{value}'"
    return ", ".join(show(v) for v in value)


def _no_constants(token: str) -> float:
    raise ValueError(f"{token} is not a number in JSON")


def _typed(value: Any, typ: str) -> bool:
    if typ == "str":
        return isinstance(value, str)
    if typ == "bool":
        return isinstance(value, bool)
    if typ == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if typ == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ == "names":
        return isinstance(value, list)
    raise AssertionError(f"contract.json: unknown type {typ!r}")


def _check_field(f: Dict[str, Any], value: Any, d: Dict[str, Any]) -> None:
    name = f["name"]
    if not _typed(value, f["type"]):
        raise ContractError(_message("type", field=name, type=SPEC["type_names"][f["type"]]))
    if f["type"] == "names":
        if not all(isinstance(s, str) and s for s in value) or len(set(value)) != len(value):
            raise ContractError(_message("names", field=name))
        if len(value) < f.get("min_items", 0):
            raise ContractError(_message("min_items", field=name, bound=f["min_items"], value=len(value)))
        if "max_items" in f and len(value) > f["max_items"]:
            raise ContractError(_message("max_items", field=name, bound=f["max_items"], value=len(value)))
        for s in value:  # lone surrogates (JSON's \ud800) counted as the C++ reader writes them
            size = len(s.encode("utf-8", "surrogatepass"))
            if "max_bytes" in f and size > f["max_bytes"]:
                raise ContractError(_message("max_bytes", field=name, bound=f["max_bytes"], value=size))
        return
    if "one_of" in f and value not in f["one_of"]:
        raise ContractError(_message("one_of", field=name, choices=show(f["one_of"]), value=show(value)))
    if "min" in f and not value >= f["min"]:
        raise ContractError(_message("min", field=name, bound=show(f["min"]), value=show(value)))
    if "max" in f and not value <= f["max"]:
        raise ContractError(_message("max", field=name, bound=show(f["max"]), value=show(value)))
    if "below" in f and not value < f["below"]:
        raise ContractError(_message("below", field=name, bound=show(f["below"]), value=show(value)))
    if "kinds" in f and d["kind"] not in f["kinds"] and value != f["default"]:
        raise ContractError(
            _message("kinds", field=name, kinds=", ".join(f["kinds"]), value=show(value), kind=d["kind"])
        )


def check_metadata(text: str) -> Dict[str, Any]:
    """The metadata of `text` (a model's stemforge.json) with every field, defaults filled in;
    ContractError, in the contract's words, at the first field or rule it breaks."""
    try:
        d = json.loads(text, parse_constant=_no_constants)
    except ValueError as e:  # JSONDecodeError, NaN/Infinity
        raise ContractError(_message("json", file=METADATA_FILE, why=str(e))) from None
    if not isinstance(d, dict) or d.get("contract") != CONTRACT:
        raise ContractError(_message("contract", file=METADATA_FILE, contract=CONTRACT))
    out: Dict[str, Any] = {}
    for f in FIELDS:
        name = f["name"]
        if name not in d:
            if f.get("required"):
                raise ContractError(_message("missing", field=name))
            out[name] = f["default"]
            continue
        if isinstance(d[name], float) and not math.isfinite(d[name]):  # 1e999
            raise ContractError(_message("type", field=name, type=SPEC["type_names"][f["type"]]))
        _check_field(f, d[name], out)
        out[name] = d[name]
    for rule in SPEC["rules"]:
        when = rule.get("when", {})
        if any(out[k] != v for k, v in when.items()):
            continue
        field, other = rule["field"], rule["at_least"]
        if out[field] < out[other]:
            if when:
                ((k, v),) = when.items()
                raise ContractError(
                    _message(
                        "at_least_when",
                        field=field,
                        other=other,
                        bound=show(out[other]),
                        value=show(out[field]),
                        when=k,
                        when_value=show(v),
                    )
                )
            raise ContractError(
                _message("at_least", field=field, other=other, bound=show(out[other]), value=show(out[field]))
            )
    return out


class ModelError(ValueError):
    """A model file that cannot be used; the message names the file and the cause."""


@dataclass(frozen=True)
class ModelInfo:
    """The metadata every model file carries."""

    name: str
    version: str
    kind: str  # one of KINDS: "streaming" or "window"
    sample_rate: int
    stems: tuple
    channels: int
    lookahead: int  # samples of algorithmic latency at the model's rate
    context: int  # samples of past input that influence an output sample
    hop: int  # streaming: samples per step; window: the stride between windows
    window: int  # window kind: samples per window; streaming: equal to hop
    sums_to_mix: bool  # masks normalised across stems: the stems add up to the input
    description: str
    training_data: str
    license: str
    untrained: bool = False  # random weights: a test fixture, not a separator
    overlap: float = 0.0  # window kind: fraction of a window shared with the next
    transition_power: float = 1.0  # window kind: exponent of the triangular weights
    tail: str = "pad"  # window kind: what the model sees of a chunk (see engine.WindowEngine)
    padded_window: int = 0  # tail "center": samples the model sees around a chunk (>= window)
    input_normalization: str = "none"  # window kind: "track" = Demucs's (x - mean) / std

    def to_json(self) -> str:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["stems"] = list(self.stems)
        d["contract"] = CONTRACT
        return json.dumps(d, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: Union[str, bytes], where: str) -> "ModelInfo":
        if isinstance(text, bytes):  # as read from the archive
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ModelError(
                    f"{where}: {METADATA_FILE} is not UTF-8 text ({e.reason} at byte "
                    f"{e.start}); rebuild the file with build.py or stemforge's "
                    "importers"
                ) from None
        try:  # the checks of contract.json, shared with the VST3 engine
            d = check_metadata(text)
        except ContractError as e:
            raise ModelError(f"{where}: {e}") from None
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["stems"] = tuple(d["stems"])
        return cls(**d)
