"""Payload retention (``mlplatform payloads prune``), on SQLite and PostgreSQL: requests older
than the retention and beyond the row cap go with their labels, oldest first and in batches;
nothing inside the monitor's reach is deleted. The expected survivors are computed from the
logged times here, not by the store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.support.services import store_backends, store_database
from typer.testing import CliRunner

from mlplatform.cli import app
from mlplatform.errors import ConfigError, LabelConflictError
from mlplatform.serving.payloads import PayloadRecord, PayloadStore, retention
from mlplatform.serving.payloads import store as store_module
from mlplatform.stores.schema import feedback, feedback_rejected

T0 = 1_767_225_600.0
HOUR = 3600.0
N = 100  # one request an hour


@pytest.fixture(params=store_backends())
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_database(request.param, tmp_path) as u:
        yield u


def log_hours(store: PayloadStore, model: str = "m") -> None:
    """N requests of ``model``, an hour apart; and one old request of another model."""
    body = json.dumps({"instances": [[1.0, 2.0]]})
    for i in range(N):
        rec = PayloadRecord(
            f"r{i:03d}", T0 + i * HOUR, model, "stable", "1", "predict", 200, 1.0, 1, body, "{}"
        )
        store.log(rec)
    store.log(PayloadRecord("other", T0, "o", "stable", "1", "predict", 200, 1.0, 1, body, "{}"))
    store.add_feedback_many([(f"r{i:03d}", float(i)) for i in range(0, N, 3)])


def labelled(store: PayloadStore) -> set[str]:
    with store.engine.connect() as conn:
        return {r[0] for r in conn.execute(sa.select(feedback.c.request_id))}


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seven requests per transaction: the loop has to run several times."""
    monkeypatch.setattr(retention, "BATCH", 7)
    monkeypatch.setattr(store_module, "BATCH", 7)


def test_requests_past_the_retention_go_with_their_labels(url: str, small_batches: None) -> None:
    now = T0 + N * HOUR  # the newest request is an hour old
    with PayloadStore(url) as store:
        log_hours(store)
        for rid in ("r000", "r099"):  # labelled already: a second label is refused, audited
            with pytest.raises(LabelConflictError):
                store.accept_feedback([(rid, 1234.0)])
        result = store.prune("m", now, retention_days=2.0, max_rows=None, keep_seconds=HOUR)
        kept = store.ids()
        labels = labelled(store)
        with store.engine.connect() as conn:
            refused = {r[0] for r in conn.execute(sa.select(feedback_rejected.c.request_id))}
    assert refused == {"r099"}  # r000's refusal went with r000
    cutoff = now - 2 * 24 * HOUR
    expected = {f"r{i:03d}" for i in range(N) if T0 + i * HOUR >= cutoff}
    assert kept == expected | {"other"} and len(expected) == 48  # another model's: kept
    assert result.requests == N - 48 and result.cutoff == cutoff
    assert labels == {f"r{i:03d}" for i in range(0, N, 3)} & expected
    assert result.labels == len({i for i in range(0, N, 3)} - {int(k[1:]) for k in expected})


def test_the_row_cap_keeps_the_newest(url: str, small_batches: None) -> None:
    with PayloadStore(url) as store:
        log_hours(store)
        result = store.prune("m", T0 + N * HOUR, retention_days=365.0, max_rows=10, keep_seconds=0)
        kept = store.ids()
        window = store.numeric_window(T0, T0 + N * HOUR, "m")
    assert kept == {f"r{i:03d}" for i in range(N - 10, N)} | {"other"}
    assert result.requests == N - 10
    assert len(window) == 10  # the monitor reads what is left


def test_a_cut_inside_the_monitors_reach_is_refused_and_deletes_nothing(url: str) -> None:
    with PayloadStore(url) as store:
        log_hours(store)
        with pytest.raises(ConfigError, match="monitor still reads"):
            store.prune(
                "m", T0 + N * HOUR, retention_days=365.0, max_rows=5, keep_seconds=24 * HOUR
            )
        assert len(store.ids()) == N + 1


def test_the_command_prunes_with_the_configs_settings(tmp_path: Path) -> None:
    db = tmp_path / "payloads.db"
    with PayloadStore(f"sqlite:///{db}") as store:
        log_hours(store, "house-price")  # 2026-01-01..05: long past the 30-day retention
    env = {"MLPLATFORM__SERVE__PAYLOAD_STORE": f"sqlite:///{db}"}
    result = CliRunner().invoke(
        app, ["payloads", "prune", "--config", "configs/house-price.yaml"], env=env
    )
    assert result.exit_code == 0, result.output
    want = f"house-price: pruned {N} requests and {len(range(0, N, 3))} labels"
    assert want in result.output
    with PayloadStore(f"sqlite:///{db}") as store:
        assert store.ids() == {"other"}
    bad = CliRunner().invoke(
        app,
        ["payloads", "prune", "--config", "configs/house-price.yaml"],
        env={**env, "MLPLATFORM__SERVE__PAYLOAD_MAX_ROWS": "0"},
    )
    assert bad.exit_code == 2 and "payload_max_rows" in bad.output
