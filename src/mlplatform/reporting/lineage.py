"""The 3 a.m. answer, rendered: one table per alias from :func:`lineage_document`."""

from __future__ import annotations

from typing import Any

from rich.table import Table

ROWS = (
    ("version", "model version"),
    ("data_version", "data version (DVC md5)"),
    ("data_path", "data file"),
    ("feature_service", "feature service"),
    ("git_commit", "code (git commit)"),
    ("pipeline_run", "pipeline run"),
    ("trigger", "started by (alert or manual)"),
    ("config_hash", "config hash"),
    ("registered_by", "registered by"),
    ("registered_at", "registered at"),
    ("alias_set_by", "alias set by"),
    ("alias_set_at", "alias set at"),
    ("alias_reason", "why"),
)


def _validation(v: dict[str, Any] | None) -> str:
    if not v:
        return "no validation record"
    checks = ", ".join(
        f"{c['name']} {c['value']:.4g} {c['op']} {c['threshold']:.4g}" for c in v.get("checks", [])
    )
    return f"{'passed' if v.get('passed') else 'FAILED'}: {checks}"


def lineage_table(doc: dict[str, Any]) -> Table:
    aliases = doc["aliases"]
    table = Table(title=f"{doc['model']} — registry {doc['tracking_uri']}")
    table.add_column("")
    for alias in aliases:
        table.add_column(alias, overflow="fold")
    for key, label in ROWS:
        table.add_row(label, *(str(aliases[a].get(key) or "-") for a in aliases))
    table.add_row("validation", *(_validation(aliases[a].get("validation")) for a in aliases))
    return table
