"""The payload log: every inference request and response, and the ground truth sent later.

One SQLite file in WAL mode with ``synchronous=FULL``. All writes go through one writer
thread that commits whatever is queued as one transaction (group commit); a write's
future resolves only after its transaction is on disk, so a logged row is never lost,
and each write sits in its own savepoint, so one bad row (a repeated request id) does not
fail its neighbours. Reads open their own short-lived connection (WAL readers never block
the writer). The same schema is written on the cluster by :mod:`mlplatform.serving.sink`.

Example::

    store = PayloadStore(Path("artifacts/payloads.db"))
    store.log(PayloadRecord("r1", time.time(), "house-price", "stable", "3", "predict", 200,
                            4.2, 1, '{"instances": [[1, 2]]}', '{"predictions": [3.5]}'))
    store.add_feedback("r1", 3.7)
    store.window(0, time.time())[["variant", "feature.0", "prediction", "label"]]

Layout: :mod:`.records` (schema, row), :mod:`.store` (:class:`PayloadStore`) and
:mod:`.decode` (request/response bodies → instances, predictions and per-instance rows).
"""

from mlplatform.serving.payloads.decode import decode_instances, decode_predictions, instance_rows
from mlplatform.serving.payloads.records import COLUMNS, SCHEMA, PayloadRecord
from mlplatform.serving.payloads.store import Job, PayloadStore, T, connect

__all__ = [
    "COLUMNS",
    "SCHEMA",
    "Job",
    "PayloadRecord",
    "PayloadStore",
    "T",
    "connect",
    "decode_instances",
    "decode_predictions",
    "instance_rows",
]
