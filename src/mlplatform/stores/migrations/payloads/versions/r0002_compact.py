"""Each request's compact form beside its bodies, and its latest label on its own row.

New nullable columns on ``payloads``: ``feature_layout``, ``feature_rows``,
``feature_numbers``, ``feature_strings`` and ``prediction_numbers`` (written at ingestion, see
:mod:`mlplatform.serving.payloads.compact`; rows already logged keep NULL there and are read
from their JSON bodies), and ``latest_label``/``latest_label_ts``: the label of the newest
``feedback`` row of the request. Those two are filled here from the feedback already stored,
then kept current by a trigger on ``feedback`` (insert, or an upsert that replaces a label), so
they stay right whichever writer adds feedback, including one from before this revision.

Revision ID: payloads_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision = "payloads_0002"
down_revision: str | None = "payloads_0001"
branch_labels = None
depends_on = None

FLOAT64: sa.types.TypeEngine[float] = sa.Double().with_variant(sqlite.REAL(), "sqlite")
COLUMNS = (
    ("feature_layout", sa.Text()),
    ("feature_rows", sa.Integer()),
    ("feature_numbers", sa.LargeBinary()),
    ("feature_strings", sa.Text()),
    ("prediction_numbers", sa.LargeBinary()),
    ("latest_label", sa.Text()),
    ("latest_label_ts", FLOAT64),
)

#: The request's row takes the new label unless it already holds a newer one.
SET_LATEST = """
    UPDATE payloads SET latest_label = NEW.label, latest_label_ts = NEW.ts
    WHERE request_id = NEW.request_id
      AND (latest_label_ts IS NULL OR latest_label_ts <= NEW.ts);
"""
BACKFILL = """
UPDATE payloads SET
  latest_label_ts = (SELECT max(f.ts) FROM feedback f WHERE f.request_id = payloads.request_id),
  latest_label = (SELECT f.label FROM feedback f WHERE f.request_id = payloads.request_id
                  ORDER BY f.ts DESC LIMIT 1)
WHERE request_id IN (SELECT request_id FROM feedback)
"""
SQLITE_TRIGGERS = {
    "feedback_latest_insert": "AFTER INSERT ON feedback",
    "feedback_latest_update": "AFTER UPDATE OF label ON feedback",
}


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("payloads", sa.Column(name, type_))
    op.execute(BACKFILL)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION feedback_latest_label() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {SET_LATEST} RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER feedback_latest_label AFTER INSERT OR UPDATE OF label ON feedback "
            "FOR EACH ROW EXECUTE FUNCTION feedback_latest_label()"
        )
        return
    for name, when in SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {when} BEGIN {SET_LATEST} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER feedback_latest_label ON feedback")
        op.execute("DROP FUNCTION feedback_latest_label()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    with op.batch_alter_table("payloads") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
