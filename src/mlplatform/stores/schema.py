"""The tables of each store, one SQLAlchemy Core schema for SQLite and PostgreSQL.

``PAYLOADS`` (the payload log: ``payloads``, ``feedback``) and ``ALERTS`` (the alert store:
``alerts``) are separate metadata: each store migrates on its own
(:func:`mlplatform.stores.migrate`). Times are Unix seconds as double precision (``REAL`` on
SQLite, as the files written before migrations existed); JSON values are text.

Beside each body, ``payloads`` keeps its compact form, written once at ingestion
(:mod:`mlplatform.serving.payloads.compact`; NULL in rows from before migration
``payloads_0002``), and the latest ``feedback`` label with its time, which a trigger on
``feedback`` keeps current for every writer (``migrations/payloads/versions/r0002_compact.py``),
so the monitor reads a window in one query, without JSON and without a join.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

#: Double precision: float8 on PostgreSQL (float4 would round Unix seconds), REAL on SQLite.
Float64: sa.types.TypeEngine[float] = sa.Double().with_variant(sqlite.REAL(), "sqlite")

PAYLOADS = sa.MetaData()

payloads = sa.Table(
    "payloads",
    PAYLOADS,
    sa.Column("request_id", sa.Text, primary_key=True),
    sa.Column("ts", Float64),
    sa.Column("model", sa.Text),
    sa.Column("variant", sa.Text),
    sa.Column("model_version", sa.Text),
    sa.Column("endpoint", sa.Text),
    sa.Column("status", sa.Integer),
    sa.Column("latency_ms", Float64),
    sa.Column("n_instances", sa.Integer),
    sa.Column("request", sa.Text),
    sa.Column("response", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("feature_layout", sa.Text),
    sa.Column("feature_rows", sa.Integer),
    sa.Column("feature_numbers", sa.LargeBinary),
    sa.Column("feature_strings", sa.Text),
    sa.Column("prediction_numbers", sa.LargeBinary),
    sa.Column("latest_label", sa.Text),
    sa.Column("latest_label_ts", Float64),
    sa.Column("block_key", sa.BigInteger),  # payloads_0005: the batch whose block holds it
    sa.Column("block_pos", sa.Integer),  # payloads_0005: its place in that batch
    sa.Index("payloads_ts", "ts"),
    sa.Index("payloads_model_ts", "model", "ts", "request_id"),  # payloads_0003
    sa.Index(
        "payloads_unblocked",
        "model",
        "ts",
        postgresql_where=sa.text("block_key IS NULL"),
        sqlite_where=sa.text("block_key IS NULL"),
    ),  # payloads_0005
)

#: Blocks of complete requests, written with them (PostgreSQL; ``payloads_0005``,
#: :mod:`mlplatform.serving.payloads.blocks`): one endpoint, model version and layout each,
#: every per-request column packed, ``keys`` naming each request's ``block_key * 65536 +
#: block_pos``.
payload_blocks = sa.Table(
    "payload_blocks",
    PAYLOADS,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("model", sa.Text),
    sa.Column("endpoint", sa.Text),
    sa.Column("model_version", sa.Text),
    sa.Column("feature_layout", sa.Text, nullable=False),
    sa.Column("ts_min", Float64, nullable=False),
    sa.Column("ts_max", Float64, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("keys", sa.LargeBinary, nullable=False),
    sa.Column("ts", sa.LargeBinary, nullable=False),
    sa.Column("status", sa.LargeBinary, nullable=False),
    sa.Column("latency_ms", sa.LargeBinary, nullable=False),
    sa.Column("feature_rows", sa.LargeBinary, nullable=False),
    sa.Column("feature_numbers", sa.LargeBinary, nullable=False),
    sa.Column("feature_strings", sa.Text, nullable=False),
    sa.Column("prediction_sizes", sa.LargeBinary, nullable=False),
    sa.Column("prediction_numbers", sa.LargeBinary, nullable=False),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Index("payload_blocks_model_end", "model", "ts_max"),
    sa.Index(
        "payload_blocks_small",
        "model",
        "endpoint",
        "model_version",
        "feature_layout",
        "id",
        postgresql_where=sa.text("n < 256"),
        sqlite_where=sa.text("n < 256"),
    ),
)

#: Labels stored after their request went into a block (``payloads_0005``): per label, the
#: request's key and time, the label's time and its JSON text (comma-separated).
label_blocks = sa.Table(
    "label_blocks",
    PAYLOADS,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("model", sa.Text),
    sa.Column("ts_min", Float64, nullable=False),
    sa.Column("ts_max", Float64, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("keys", sa.LargeBinary, nullable=False),
    sa.Column("ts", sa.LargeBinary, nullable=False),
    sa.Column("label_ts", sa.LargeBinary, nullable=False),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Index("label_blocks_model_end", "model", "ts_max"),
    sa.Index(
        "label_blocks_small",
        "model",
        "id",
        postgresql_where=sa.text("n < 256"),
        sqlite_where=sa.text("n < 256"),
    ),
)

#: The batch numbers of ``block_key`` (PostgreSQL only: SQLite writes no blocks).
BATCHES = sa.Sequence("payload_batches", increment=1024, metadata=PAYLOADS)

feedback = sa.Table(
    "feedback",
    PAYLOADS,
    sa.Column("request_id", sa.Text, primary_key=True),
    sa.Column("ts", Float64, primary_key=True),
    sa.Column("label", sa.Text),
)

#: Feedback refused because its request already had another label (the first label wins):
#: the attempt, when, and the label that was kept (``payloads_0004``). Never read by the monitor.
feedback_rejected = sa.Table(
    "feedback_rejected",
    PAYLOADS,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("ts", Float64, nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("kept_label", sa.Text, nullable=False),
    sa.Index("feedback_rejected_request", "request_id"),
    sqlite_autoincrement=True,
)

ALERTS = sa.MetaData()
STATUSES = ("open", "claimed", "run_started", "resolved", "suppressed", "failed")

alerts = sa.Table(
    "alerts",
    ALERTS,
    sa.Column("alert_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("window_start", Float64, nullable=False),
    sa.Column("window_end", Float64, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("model_versions", sa.Text, nullable=False),
    sa.Column("created_at", Float64, nullable=False),
    sa.Column("suppressed_by", sa.Integer, sa.ForeignKey("alerts.alert_id")),
    sa.Column("claim_owner", sa.Text),
    sa.Column("claimed_at", Float64),
    sa.Column("lease_expires", Float64),
    sa.Column("claims", sa.Integer, nullable=False, server_default="0"),
    sa.Column("run_id", sa.Text),
    sa.Column("run_started_at", Float64),
    sa.Column("resolved_version", sa.Text),
    sa.Column("resolved_at", Float64),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),  # alerts_0002
    sa.Column("last_error", sa.Text),  # alerts_0002
    sa.CheckConstraint(
        "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")", name="alerts_status_check"
    ),
    sa.UniqueConstraint("model", "window_start", "window_end", name="alerts_window"),
    sa.Index("alerts_model_end", "model", "window_end"),
    sa.Index("alerts_status", "status"),
    sqlite_autoincrement=True,
)
