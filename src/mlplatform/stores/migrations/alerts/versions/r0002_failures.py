"""Failed retraining runs: status ``failed``, the number of failed starts and the last error.

The retrain trigger retries a start that failed for a transient reason (a dependency down)
after a back-off, and marks the alert ``failed`` with the error when the reason is permanent
or the attempts run out (:mod:`mlplatform.orchestration.retrain`). Existing rows keep their
status; their ``failures`` start at 0. SQLite cannot change a CHECK constraint in place: the
table is copied (batch mode), ids and ``AUTOINCREMENT`` kept.

Revision ID: alerts_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision = "alerts_0002"
down_revision: str | None = "alerts_0001"
branch_labels = None
depends_on = None

OLD = "'open', 'claimed', 'run_started', 'resolved', 'suppressed'"
NEW = f"{OLD}, 'failed'"
FLOAT64: sa.types.TypeEngine[float] = sa.Double().with_variant(sqlite.REAL(), "sqlite")


def _alerts_0001() -> sa.Table:
    """The table as alerts_0001 declares it: SQLite copies the table from this, not from
    reflection, since a file from before migrations has the same columns with unnamed
    constraints (reflection would find no ``alerts_status_check`` to drop)."""
    return sa.Table(
        "alerts",
        sa.MetaData(),
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
        sa.CheckConstraint(f"status IN ({OLD})", name="alerts_status_check"),
        sa.UniqueConstraint("model", "window_start", "window_end", name="alerts_window"),
        sa.Index("alerts_model_end", "model", "window_end"),
        sa.Index("alerts_status", "status"),
        sqlite_autoincrement=True,
    )


def upgrade() -> None:
    seq = _sqlite_sequence()
    with op.batch_alter_table(
        "alerts",
        recreate="auto",
        copy_from=_alerts_0001(),
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch:
        batch.add_column(sa.Column("failures", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_error", sa.Text))
        batch.drop_constraint("alerts_status_check", type_="check")
        batch.create_check_constraint("alerts_status_check", sa.text(f"status IN ({NEW})"))
    _restore_sqlite_sequence(seq)


def _sqlite_sequence() -> int | None:
    """SQLite: the highest alert id ever given (``sqlite_sequence``), which the table copy
    would reset to the highest id still present: a deleted alert's id must never come back,
    since run names (``alert-<model>-<id>``) are unique by it."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return None
    found = bind.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'alerts'")
    value = found.scalar()
    return None if value is None else int(value)


def _restore_sqlite_sequence(seq: int | None) -> None:
    if seq is None:
        return
    bind = op.get_bind()
    done = bind.exec_driver_sql(
        "UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'alerts'", (seq,)
    )
    if done.rowcount == 0:
        bind.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES ('alerts', ?)", (seq,))


def downgrade() -> None:
    with op.batch_alter_table(
        "alerts", recreate="auto", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:  # from reflection: this revision's own table has the named constraint
        batch.drop_constraint("alerts_status_check", type_="check")
        batch.create_check_constraint("alerts_status_check", sa.text(f"status IN ({OLD})"))
        batch.drop_column("last_error")
        batch.drop_column("failures")
