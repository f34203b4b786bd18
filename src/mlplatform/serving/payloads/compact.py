"""The compact form of a logged request's instances and of its response's predictions,
computed once at ingestion and stored beside the JSON bodies, so that a window is read back
without parsing JSON (:mod:`.numeric`).

A request's instances share one :class:`Layout`: the kind of each feature value (``f`` a
float, ``i`` an integer, ``s`` a string) and, for objects, their keys (``None`` for rows given
by position). Its columns:

* ``feature_layout``: the layout as JSON, ``[kinds, keys]``, e.g. ``["ffis", ["area", ...]]``;
* ``feature_rows``: the number of instances n;
* ``feature_numbers``: the numeric values of every instance as little-endian float64, row-major
  ``(n, numeric features)``;
* ``feature_strings``: the string values as JSON string literals, each followed by a comma,
  row-major ``(n, string features)``: the column of a whole window, joined and wrapped in
  ``[...]`` without its last comma, is one JSON array (NULL when the layout has no strings);
* ``prediction_numbers``: each prediction as :func:`~.decode.as_number` reads it, float64.

A body the form cannot carry (a null, boolean or nested value, instances of different layouts,
an integer beyond 2**53) gets NULL feature columns; readers decode its JSON instead. A request
without instances (or without a body) is one row with no features, as
:func:`~.decode.instance_rows` reads it.

>>> cols = encode_request('{"instances": [{"area": 50.5, "district": "d1"}]}')
>>> cols["feature_layout"], cols["feature_rows"], cols["feature_strings"]
('["fs",["area","district"]]', 1, '"d1",')
>>> struct.unpack("<d", cols["feature_numbers"])
(50.5,)
>>> encode_request('{"instances": [[1, true]]}')["feature_layout"] is None
True
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from mlplatform.serving.payloads.decode import as_number, decode_instances, decode_predictions

FEATURE_COLUMNS = ("feature_layout", "feature_rows", "feature_numbers", "feature_strings")
PREDICTION_COLUMN = "prediction_numbers"
MAX_EXACT_INT = 2**53  # float64 holds every integer up to here exactly
KIND_OF: dict[type, str] = {float: "f", int: "i", str: "s"}
NOT_ENCODED: dict[str, Any] = dict.fromkeys(FEATURE_COLUMNS)
NO_FEATURES: dict[str, Any] = {
    "feature_layout": '["",null]',
    "feature_rows": 1,
    "feature_numbers": b"",
    "feature_strings": None,
}


@dataclass(frozen=True)
class Layout:
    """The shape every instance of one request shares."""

    kinds: str  # one letter per feature: f float, i integer, s string
    keys: tuple[str, ...] | None  # the instances' keys; None for positional rows

    def names(self, feature_names: tuple[str, ...] | None) -> list[str]:
        """Column names, as :func:`~.decode.instance_rows` names them: the keys, else
        ``feature_names`` when there are as many, else the positions."""
        if self.keys is not None:
            return list(self.keys)
        if feature_names is not None and len(feature_names) == len(self.kinds):
            return list(feature_names)
        return [str(i) for i in range(len(self.kinds))]


@lru_cache(maxsize=256)
def parse_layout(text: str) -> Layout:
    """The :class:`Layout` of a ``feature_layout`` value."""
    kinds, keys = orjson.loads(text)
    return Layout(kinds, None if keys is None else tuple(keys))


def _kinds(values: list[Any]) -> str:
    """One letter per value (``x`` for a value the form cannot carry)."""
    return "".join(map(_kind, values))


def _kind(value: Any) -> str:
    kind = KIND_OF.get(type(value), "x")  # exact types: a bool is not an integer here
    return "x" if kind == "i" and abs(value) > MAX_EXACT_INT else kind


@lru_cache(maxsize=256)
def _layout_text(layout: Layout) -> str:
    return orjson.dumps([layout.kinds, layout.keys]).decode()


def _split(instance: Any) -> tuple[tuple[str, ...] | None, list[Any]] | None:
    """(keys or None, values) of one instance; None for a null instance."""
    if isinstance(instance, dict):
        return tuple(instance), list(instance.values())
    if isinstance(instance, list):
        return None, instance
    return None if instance is None else (None, [instance])


def _layout(instances: list[Any]) -> tuple[Layout, list[list[Any]]] | None:
    """The one layout of all ``instances`` and their values, or None if there is none."""
    parts = [_split(i) for i in instances]
    if parts[0] is None:
        return None
    layout = Layout(_kinds(parts[0][1]), parts[0][0])
    if "x" in layout.kinds:
        return None
    rows = []
    for part in parts:
        if part is None or part[0] != layout.keys or _kinds(part[1]) != layout.kinds:
            return None
        rows.append(part[1])
    return layout, rows


def encode_request(text: str | None) -> dict[str, Any]:
    """The feature columns of a request body (all None when the form cannot carry it)."""
    instances = decode_instances(text)
    if not instances:
        return dict(NO_FEATURES)
    found = _layout(instances)
    if found is None:
        return dict(NOT_ENCODED)
    layout, rows = found
    numeric = [j for j, k in enumerate(layout.kinds) if k != "s"]
    strings = [j for j, k in enumerate(layout.kinds) if k == "s"]
    numbers = [row[j] for row in rows for j in numeric]
    texts = "".join(orjson.dumps(row[j]).decode() + "," for row in rows for j in strings)
    return {
        "feature_layout": _layout_text(layout),
        "feature_rows": len(rows),
        "feature_numbers": struct.pack(f"<{len(numbers)}d", *numbers),
        "feature_strings": texts or None,
    }


def encode_response(text: str | None) -> dict[str, Any]:
    """The ``prediction_numbers`` of a response body (empty when it has no predictions)."""
    values = [as_number(p) for p in decode_predictions(text) or []]
    return {PREDICTION_COLUMN: struct.pack(f"<{len(values)}d", *values)}


def encode_half(half: str, row: dict[str, Any]) -> dict[str, Any]:
    """The columns one half of a request/response pair sets (``request`` or ``response``,
    see :func:`~.statements.upsert_half`), with that half's compact form added."""
    if half == "request":
        return {**row, **encode_request(row.get("request"))}
    return {**row, **encode_response(row.get("response"))}


def encode_record(params: dict[str, Any]) -> dict[str, Any]:
    """A whole ``payloads`` row (request and response) with its compact form added."""
    return {**params, **encode_request(params["request"]), **encode_response(params["response"])}
