"""Why the predictor would refuse a logged request (HTTP 4xx), read from the body alone.

KServe's logger agent posts a response event only for status 200 (``pkg/logger``, see
``cluster-facts.md``), so on the cluster a request without a response may be a client's
mistake as well as a server failure. The rollout counts only 5xx and timeouts as errors, on
the router (which sees the status) and on the sink path alike; the sink tells the two apart
with this check: the structural rules of :mod:`mlplatform.serving.inputs` and
:meth:`mlplatform.core.model.LinearModel.frame` that need only the config (JSON, an
``instances`` list within ``serve.max_instances``, rows of the configured width or keys,
finite numbers where the features are numeric, or ``{entity: id}`` rows). A body that passes
and still got no response counts as a server error; so does one the predictor refused for a
reason only the model knows (an unknown category), which this check cannot see.

>>> check = RequestCheck(("a", "b"), ("a",), "id", 10)
>>> check.reason('{"instances": [[1, "x"]]}') is None
True
>>> check.reason('{"instances": [[1]]}')
'a row has 1 values, not the 2 features'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class RequestCheck:
    """The config's view of a valid v1 request."""

    feature_names: tuple[str, ...]
    numeric: tuple[str, ...]
    entity: str
    max_instances: int

    def reason(self, body: str | None) -> str | None:
        """Why the body is a client error, or None when it looks valid."""
        try:
            doc = orjson.loads(body or "")
        except orjson.JSONDecodeError:
            return "not JSON"
        rows = doc.get("instances") if isinstance(doc, dict) else None
        if not isinstance(rows, list):
            return 'no "instances" list'
        if not rows or len(rows) > self.max_instances:
            return f"{len(rows)} instances (1 to {self.max_instances})"
        for row in rows:
            problem = self._row(row)
            if problem is not None:
                return problem
        return None

    def _row(self, row: Any) -> str | None:
        if isinstance(row, dict) and set(row) == {self.entity}:
            value = row[self.entity]
            ok = isinstance(value, int) and not isinstance(value, bool)
            return None if ok else f"{self.entity} is not an integer id"
        if isinstance(row, dict):
            missing = [n for n in self.feature_names if n not in row]
            if missing:
                return f"a row lacks {missing}"
            values = dict(row)
        elif isinstance(row, list):
            if len(row) != len(self.feature_names):
                return f"a row has {len(row)} values, not the {len(self.feature_names)} features"
            values = dict(zip(self.feature_names, row, strict=True))
        else:
            return "a row is neither a list nor an object"
        for name in self.numeric:
            if not _finite(values[name]):
                return f"{name!r} is not a finite number"
        return None


def _finite(value: Any) -> bool:
    """A value the model reads as a finite number (``pd.to_numeric``: a bool is 0 or 1)."""
    if isinstance(value, int | float):
        return math.isfinite(value)
    if isinstance(value, str):  # the model parses numeric strings (pd.to_numeric)
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    return False
