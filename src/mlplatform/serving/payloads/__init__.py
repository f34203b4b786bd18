"""The payload log: every inference request and response, and the ground truth sent later.

One database chosen by URL (``serve.payload_store``): a SQLite file in WAL mode with
``synchronous=FULL`` in the embedded default, PostgreSQL on the cluster; the tables are
:mod:`mlplatform.stores.schema`, migrated on open. All writes go through one writer thread
that commits whatever is queued as one transaction (group commit, rows of one statement as
one ``executemany``); a write's future resolves only after its transaction is durable, so a
logged row is never lost, and a bad row (a repeated request id) fails alone. Reads take a
pooled connection of their own (they never block the writer). The cluster's payload sink
(:mod:`mlplatform.serving.sink`) writes the same tables.

Example::

    store = PayloadStore("sqlite:///artifacts/payloads.db")
    store.log(PayloadRecord("r1", time.time(), "house-price", "stable", "3", "predict", 200,
                            4.2, 1, '{"instances": [[1, 2]]}', '{"predictions": [3.5]}'))
    store.add_feedback("r1", 3.7)
    store.window(0, time.time())[["variant", "feature.0", "prediction", "label"]]

Every row also gets its bodies' compact form as it is written (float64 feature values and
predictions, categorical strings: :mod:`.compact`), so the monitor reads a window without
parsing JSON (``store.numeric_window(...)``, :mod:`.numeric`). On PostgreSQL each batch's
complete requests are also packed into blocks as they are written (:mod:`.blocks`), merged
when small (:mod:`.compaction`), and a window is read as its blocks plus the few rows in none
(:mod:`.block_read`).

Layout: :mod:`.records` (the row), :mod:`.statements` (the writes, per dialect),
:mod:`.writer` (the group commit), :mod:`.store` (:class:`PayloadStore`), :mod:`.feedback`
(clients' labels: first label wins, refused ones audited), :mod:`.decode`
(request/response bodies → instances, predictions and per-instance rows), :mod:`.compact`
(the compact form written at ingestion), :mod:`.numeric` and :mod:`.window_sql` (a window read
back from rows), :mod:`.blocks`, :mod:`.compaction` and :mod:`.block_read` (blocks), and
:mod:`.retention` (pruning).
"""

from mlplatform.serving.payloads.decode import (
    as_number,
    decode_instances,
    decode_predictions,
    instance_rows,
)
from mlplatform.serving.payloads.records import (
    COLUMNS,
    EXPLAINER_HEADER,
    EXPLAINER_TRAFFIC,
    PayloadRecord,
)
from mlplatform.serving.payloads.statements import Half
from mlplatform.serving.payloads.store import PayloadStore, T
from mlplatform.serving.payloads.writer import Job, Write

__all__ = [
    "COLUMNS",
    "EXPLAINER_HEADER",
    "EXPLAINER_TRAFFIC",
    "Half",
    "Job",
    "PayloadRecord",
    "PayloadStore",
    "T",
    "Write",
    "as_number",
    "decode_instances",
    "decode_predictions",
    "instance_rows",
]
