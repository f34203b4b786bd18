"""The payload log as the embedded store first wrote it: ``payloads`` and ``feedback``.

A SQLite file written before migrations existed already has these tables: they are kept as
they are (rows included) and the file is only stamped with this revision.

Revision ID: payloads_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision = "payloads_0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

FLOAT64: sa.types.TypeEngine[float] = sa.Double().with_variant(sqlite.REAL(), "sqlite")


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "payloads" not in existing:
        op.create_table(
            "payloads",
            sa.Column("request_id", sa.Text, primary_key=True),
            sa.Column("ts", FLOAT64),
            sa.Column("model", sa.Text),
            sa.Column("variant", sa.Text),
            sa.Column("model_version", sa.Text),
            sa.Column("endpoint", sa.Text),
            sa.Column("status", sa.Integer),
            sa.Column("latency_ms", FLOAT64),
            sa.Column("n_instances", sa.Integer),
            sa.Column("request", sa.Text),
            sa.Column("response", sa.Text),
            sa.Column("error", sa.Text),
        )
        op.create_index("payloads_ts", "payloads", ["ts"])
    if "feedback" not in existing:
        op.create_table(
            "feedback",
            sa.Column("request_id", sa.Text, primary_key=True),
            sa.Column("ts", FLOAT64, primary_key=True),
            sa.Column("label", sa.Text),
        )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_index("payloads_ts", "payloads")
    op.drop_table("payloads")
