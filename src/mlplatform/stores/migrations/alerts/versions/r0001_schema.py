"""The alert store as the embedded store first wrote it: ``alerts`` with the retrain claims.

A SQLite file written before migrations existed already has this table: it is kept as it is
(rows included) and the file is only stamped with this revision.

Revision ID: alerts_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision = "alerts_0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

FLOAT64: sa.types.TypeEngine[float] = sa.Double().with_variant(sqlite.REAL(), "sqlite")
STATUSES = "'open', 'claimed', 'run_started', 'resolved', 'suppressed'"


def upgrade() -> None:
    if "alerts" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("window_start", FLOAT64, nullable=False),
        sa.Column("window_end", FLOAT64, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("model_versions", sa.Text, nullable=False),
        sa.Column("created_at", FLOAT64, nullable=False),
        sa.Column("suppressed_by", sa.Integer, sa.ForeignKey("alerts.alert_id")),
        sa.Column("claim_owner", sa.Text),
        sa.Column("claimed_at", FLOAT64),
        sa.Column("lease_expires", FLOAT64),
        sa.Column("claims", sa.Integer, nullable=False, server_default="0"),
        sa.Column("run_id", sa.Text),
        sa.Column("run_started_at", FLOAT64),
        sa.Column("resolved_version", sa.Text),
        sa.Column("resolved_at", FLOAT64),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="alerts_status_check"),
        sa.UniqueConstraint("model", "window_start", "window_end", name="alerts_window"),
        sqlite_autoincrement=True,
    )
    op.create_index("alerts_model_end", "alerts", ["model", "window_end"])
    op.create_index("alerts_status", "alerts", ["status"])


def downgrade() -> None:
    op.drop_table("alerts")
