"""``params.yaml``, generated from ``configs/*.yaml`` so a parameter is still declared once.

DVC reads it to know which values each stage of ``dvc.yaml`` depends on (``dvc params diff``,
``dvc exp show``) and to expand the stages per model (``foreach: ${models}``). It is a mirror:
edit the config, then regenerate::

    python -m mlplatform.versioning            # rewrites ./params.yaml from ./configs
    python -m mlplatform.versioning --check    # exit 1 if params.yaml is stale

Only the sections the stages read are mirrored (:data:`STAGE_FIELDS`); environment overrides
(``MLPLATFORM__...``) are ignored, so the file depends on the configs only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mlplatform.config import PlatformConfig, load_config

#: Config fields the ``data`` and ``train`` stages depend on (explain/validate are not DVC stages).
STAGE_FIELDS = frozenset(
    {
        "task",
        "entity",
        "timestamp",
        "target",
        "features",
        "artifacts_dir",
        "data",
        "normalize",
        "train",
    }
)
HEADER = (
    "# GENERATED from configs/*.yaml by `python -m mlplatform.versioning`: do not edit.\n"
    "# dvc.yaml reads it (foreach: ${models}); tests check it matches the configs.\n"
)


def committed_configs(root: Path) -> list[PlatformConfig]:
    """Every ``root/configs/*.yaml``, by file name, without environment overrides."""
    return [load_config(p, env={}) for p in sorted((root / "configs").glob("*.yaml"))]


def params_document(cfgs: Sequence[PlatformConfig]) -> dict[str, Any]:
    """``{"models": {model_name: {field: value for the stage fields, as in the YAML}}}``."""
    return {
        "models": {
            c.model_name: c.model_dump(mode="json", by_alias=True, include=set(STAGE_FIELDS))
            for c in cfgs
        }
    }


def render_params(cfgs: Sequence[PlatformConfig]) -> str:
    """The text of ``params.yaml``: header plus YAML in config field order."""
    body = yaml.safe_dump(params_document(cfgs), sort_keys=False, allow_unicode=True, width=100)
    return HEADER + body


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlplatform.versioning", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path(), help="project root (has configs/)")
    parser.add_argument("--check", action="store_true", help="only check params.yaml is current")
    args = parser.parse_args(argv)
    text = render_params(committed_configs(args.root))
    target = args.root / "params.yaml"
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print(f"{target} is stale: run python -m mlplatform.versioning", file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0
