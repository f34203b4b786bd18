"""What the payload log stores: one row as :class:`PayloadRecord` (the tables are
:mod:`mlplatform.stores.schema`; its errors are in :mod:`mlplatform.errors`)."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class PayloadRecord:
    """One row of ``payloads``: a request, its response (or error) and where it was served."""

    request_id: str
    ts: float
    model: str
    variant: str | None
    model_version: str | None
    endpoint: str
    status: int | None
    latency_ms: float | None
    n_instances: int | None
    request: str | None
    response: str | None
    error: str | None = None


COLUMNS = tuple(f.name for f in fields(PayloadRecord))

#: The header (and its value) the explainer puts on its neighbourhood batches to the
#: predictor. On the cluster KServe's agent copies it into each event's ``metadata`` attribute
#: (the chart lists it in ``logger.metadataHeaders``) and the payload sink leaves such events
#: out of the log: they are not user traffic. Spelled as Go's net/http canonicalizes header
#: names, since the agent matches them exactly (pkg/logger/handler.go, v0.20.0).
EXPLAINER_HEADER = "X-Mlplatform-Traffic"
EXPLAINER_TRAFFIC = "explainer"
