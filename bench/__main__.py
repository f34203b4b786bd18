"""Run every benchmark module and print one Markdown table (paste it into the README).

Usage: ``python -m bench [module ...]`` with modules such as ``gd`` or ``explain``.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

MODULES = ("gd", "explain", "serving", "drift", "stores")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)


def table(rows: list[dict[str, Any]]) -> str:
    head = "| benchmark | baseline | ours | baseline value | ratio | target | met | notes |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [
            r.get("benchmark"),
            r.get("baseline"),
            r.get("ours"),
            r.get("baseline_value"),
            r.get("ratio"),
            r.get("target"),
            "yes" if r.get("ok") else "no",
            r.get("notes"),
        ]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    names = argv or list(MODULES)
    rows: list[dict[str, Any]] = []
    for name in names:
        try:
            module = importlib.import_module(f"bench.bench_{name}")
        except ModuleNotFoundError as exc:
            print(f"skip bench_{name}: {exc}", file=sys.stderr)
            continue
        t = time.perf_counter()
        print(f"running bench_{name} ...", file=sys.stderr, flush=True)
        rows.extend(module.run())
        print(f"  done in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    machine = f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
    print(f"Machine: {machine}\n")
    print(table(rows))
    out = Path("artifacts/bench.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
