"""The README's main story as a test: train v1, serve, drift, alert, retrain v2 on the new data,
canary, promote, and the lineage answer (everything real, on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplatform.demo.loop import run_loop
from mlplatform.monitoring.alert_store import AlertStore

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_the_closed_loop(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_loop(tmp_path, ROOT, lines.append, rows=2000)
    assert result.versions == {"v1": "1", "v2": "2"}
    assert result.rollout == "promoted" and result.failed_requests == 0
    champion = result.lineage["aliases"]["champion"]  # type: ignore[index]
    assert champion["version"] == "2"
    assert champion["trigger"] == f"alert-house-price-{result.alert_id}"
    assert champion["validation"]["passed"] is True
    assert "canary rollout" in champion["alias_reason"]
    alert = AlertStore(tmp_path / "alerts.db").get(result.alert_id)  # type: ignore[arg-type]
    assert alert.status == "resolved" and alert.resolved_version == "2"
    assert alert.model == "house-price" and alert.evidence["data_drift"]
    html = [p for p in result.reports if p.suffix == ".html"]
    assert len(html) == 2 and all(p.stat().st_size > 10_000 for p in html)
    assert [line[:3] for line in lines if line[:1].isdigit()] == [f"{i}/7" for i in range(1, 8)]
