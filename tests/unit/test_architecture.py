"""The architecture as tests: each folder is one role, and imports only point down.

    ground (config, errors, image) ← core ← adapters ← stages ← orchestration ← cli, demo

Imports are read from the source (``ast``), including those inside functions, so a lazy
import that runs back up is caught too. The README's "Where things live" states the same rules.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "mlplatform"

LAYERS: dict[str, int] = {
    "__init__": 0,
    "errors": 0,
    "image": 0,
    "config": 1,  # ground floor too: it may import errors
    "core": 2,
    "features": 3,
    "registry": 3,
    "versioning": 3,
    "reporting": 3,
    "reference": 3,
    "serving": 3,
    "monitoring": 3,
    "stores": 3,
    "stages": 4,
    "orchestration": 5,
    "cli": 6,
    "demo": 6,
}
ADAPTERS, TOP = 3, 6
#: Which adapters another adapter may import (everything else of its floor is off limits).
ADAPTER_USES: dict[str, set[str]] = {
    "serving": {"features", "registry", "stores"},
    "monitoring": {"registry", "serving", "stores"},
    "registry": {"stores"},  # one Alembic lock per process (stores/migrate.py)
}
#: Within the top floor the CLI starts the demo; the demo never imports the CLI.
TOP_USES: dict[str, set[str]] = {"cli": {"demo"}, "demo": set()}
FRAMEWORKS = {"kfp", "kserve", "feast", "mlflow", "evidently", "dvc", "typer", "rich", "httpx"}


def unit_of(path: Path) -> str:
    """The top-level unit of a module file: ``core`` for core/drift/ks.py, ``config``..."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def imports_of(path: Path) -> set[str]:
    """Every module name ``path`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: use absolute imports (mlplatform.…)")
    return names


def unit_imports() -> dict[str, set[tuple[str, Path]]]:
    """unit → {(imported unit or top-level library, importing file)}."""
    out: dict[str, set[tuple[str, Path]]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        for name in imports_of(path):
            parts = name.split(".")
            target = parts[1] if parts[0] == "mlplatform" and len(parts) > 1 else parts[0]
            if parts[0] == "mlplatform" and len(parts) == 1:
                target = "__init__"
            out[unit_of(path)].add((target if parts[0] == "mlplatform" else f"lib:{target}", path))
    return out


GRAPH = unit_imports()


def test_every_unit_has_a_floor() -> None:
    units = {unit_of(p) for p in PACKAGE.rglob("*.py")}
    assert units <= set(LAYERS), f"new folders need a floor in LAYERS: {units - set(LAYERS)}"


def test_no_import_of_the_repository_root_packages() -> None:
    """The console script runs anywhere: nothing imports the repo's pipelines/ or components/."""
    bad = [
        f"{p.relative_to(PACKAGE)} imports {t}"
        for deps in GRAPH.values()
        for t, p in deps
        if t in ("lib:pipelines", "lib:components", "lib:tests")
    ]
    assert bad == []


@pytest.mark.parametrize("unit", sorted(LAYERS))
def test_imports_point_down(unit: str) -> None:
    floor = LAYERS[unit]
    bad = []
    for target, path in GRAPH.get(unit, set()):
        if target.startswith("lib:") or target == unit:
            continue
        same_floor = LAYERS[target] == floor
        allowed = (
            LAYERS[target] < floor
            or (same_floor and floor == ADAPTERS and target in ADAPTER_USES.get(unit, set()))
            or (same_floor and floor == TOP and target in TOP_USES[unit])
        )
        if not allowed:
            bad.append(f"{path.relative_to(PACKAGE)} ({unit}) imports {target}")
    assert bad == [], "imports that run up or sideways:\n" + "\n".join(sorted(bad))


def test_core_imports_no_framework_or_adapter() -> None:
    bad = [
        f"{p.relative_to(PACKAGE)} imports {t}"
        for t, p in GRAPH["core"]
        if t.removeprefix("lib:") in FRAMEWORKS
        or (not t.startswith("lib:") and LAYERS[t] > LAYERS["core"])
    ]
    assert bad == []


def test_no_circular_imports_between_units() -> None:
    edges = {
        u: {t for t, _ in deps if not t.startswith("lib:") and t != u} for u, deps in GRAPH.items()
    }
    state: dict[str, str] = {}

    def visit(u: str, trail: list[str]) -> None:
        state[u] = "open"
        for v in sorted(edges.get(u, set())):
            assert state.get(v) != "open", "import cycle: " + " → ".join([*trail, u, v])
            if v not in state:
                visit(v, [*trail, u])
        state[u] = "done"

    for u in sorted(edges):
        if u not in state:
            visit(u, [])


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """Negative control: a lazy upward import inside a function is found."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from mlplatform.cli import app\n    return app\n")
    assert "mlplatform.cli" in imports_of(f)


#: Modules allowed over the size guideline because they only declare (fields, no logic).
DECLARATIONS = {"config/sections.py", "errors.py"}  # settings; error classes with statuses
MAX_LINES = 300


def test_modules_stay_small() -> None:
    big = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert set(big) <= DECLARATIONS, f"split by concept (over {MAX_LINES} lines): {big}"


def test_tests_import_no_other_test_module() -> None:
    """Shared helpers live in tests/support/; a test module never imports another one."""
    tests = PACKAGE.parents[1] / "tests"
    bad = [
        f"{p.relative_to(tests)} imports {name}"
        for p in tests.rglob("*.py")
        for name in imports_of(p)
        if name.split(".")[-1].startswith("test_") or name.split(".")[0] == "conftest"
    ]
    assert bad == []


def test_test_module_names_are_unique() -> None:
    """pytest imports test files by basename (no packages): two test_x.py in different folders
    break collection of the whole suite."""
    tests = PACKAGE.parents[1] / "tests"
    names = [p.name for p in tests.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
