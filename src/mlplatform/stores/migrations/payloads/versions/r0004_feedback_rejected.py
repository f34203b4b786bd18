"""The audit of refused feedback: ``feedback_rejected``.

Feedback is first-label-wins (:meth:`mlplatform.serving.payloads.PayloadStore.accept_feedback`):
a second, different label for a request is refused with HTTP 409 and recorded here, with its
time and the label that was kept, so flipped labels leave a trace instead of overwriting ground
truth. Rows already in ``feedback`` are left as they are.

Revision ID: payloads_0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision = "payloads_0004"
down_revision: str | None = "payloads_0003"
branch_labels = None
depends_on = None

FLOAT64: sa.types.TypeEngine[float] = sa.Double().with_variant(sqlite.REAL(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "feedback_rejected",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("ts", FLOAT64, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("kept_label", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("feedback_rejected_request", "feedback_rejected", ["request_id"])


def downgrade() -> None:
    op.drop_index("feedback_rejected_request", "feedback_rejected")
    op.drop_table("feedback_rejected")
