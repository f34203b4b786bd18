"""The helm flags that pin the version each predictor serves, read from the release's MLflow.

    python scripts/serving_versions.py --values helm/mlplatform/values-kind.yaml
    python scripts/serving_versions.py --values ... --canary house-price --percent 10

prints, one per line, ``--set-string models.<model>.modelVersion=<version>`` for every
enabled model (its ``champion``), and for ``--canary`` the model's ``challenger`` instead,
with ``--set models.<model>.canaryTrafficPercent=<percent>``. ``scripts/deploy.sh`` puts them
before the user's own ``SET`` flags (which win). MLflow is reached through a
``kubectl port-forward`` to ``svc/<release>-mlflow`` for the duration of the command.

A revision names a version, never an alias: an alias moves (promotion deletes
``challenger``) while a revision keeps starting pods long after it was deployed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from port_forward import forward

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "mlplatform"


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` deep-merged onto ``base`` (as helm merges a values file onto values.yaml)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def chart_values(values_file: Path | None) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    if values_file is not None:
        values = merged(values, yaml.safe_load(values_file.read_text(encoding="utf-8")) or {})
    return values


def with_sets(values: Mapping[str, Any], sets: list[str]) -> dict[str, Any]:
    """``values`` with helm's ``--set key.path=value`` flags applied (``true``/``false`` and
    numbers typed as helm types them, everything else a string), so the models the user
    enables or disables on the command line (``make deploy SET=models.<m>.enabled=false``)
    are the ones pinned here."""
    out = dict(values)
    for item in (part for flag in sets for part in flag.split(",")):  # helm: a=1,b=2
        path, _, raw = item.partition("=")
        keys = path.split(".")
        value = yaml.safe_load(raw) if raw.lower() in ("true", "false") or _number(raw) else raw
        node = out
        for key in keys[:-1]:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, Mapping) else {}
            node = node[key]
        node[keys[-1]] = value
    return out


def _number(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def served_models(values: Mapping[str, Any]) -> list[str]:
    """The models the chart deploys a predictor for (``models.<m>.enabled``), sorted."""
    return sorted(name for name, m in (values.get("models") or {}).items() if m.get("enabled"))


Resolve = Callable[[str, str], "str | None"]


class RefusedError(Exception):
    """Nothing to deploy as asked; the message says what to do (exit code 2)."""


def version_flags(
    models: list[str], resolve: Resolve, canary: str | None = None, percent: int = 10
) -> list[str]:
    """The helm flags; ``resolve(model, alias)`` is the version holding the alias, or None.
    Refuses (:class:`RefusedError`, saying what to do) a model without a champion and a
    canary without a challenger awaiting a rollout."""
    if canary is not None and canary not in models:
        raise RefusedError(f"--canary {canary}: not an enabled model ({', '.join(models)})")
    flags = []
    for model in models:
        champion = resolve(model, "champion")
        if champion is None:
            raise RefusedError(
                f"{model} has no champion in the registry yet: run its pipeline first "
                f"(make pipeline-run MODEL={model}), or deploy with SERVING=false"
            )
        version = champion
        if model == canary:
            version = _challenger(model, champion, resolve)
            flags += ["--set", f"models.{model}.canaryTrafficPercent={percent}"]
        flags += ["--set-string", f"models.{model}.modelVersion={version}"]
    return flags


def _challenger(model: str, champion: str, resolve: Resolve) -> str:
    challenger = resolve(model, "challenger")
    if challenger is None or challenger == champion:
        raise RefusedError(
            f"{model} has no challenger awaiting a rollout (champion is v{champion}): train "
            f"one first (make pipeline-run MODEL={model})"
        )
    return challenger


def registry_resolver(tracking_uri: str) -> Resolve:
    """``resolve(model, alias)`` against the MLflow at ``tracking_uri``; a version that was
    rolled back (``rollback.at`` tag) is no challenger."""
    from mlplatform.config import RegistryConfig
    from mlplatform.registry.mlflow_registry import Registry

    registry = Registry(RegistryConfig(tracking_uri=tracking_uri))

    def resolve(model: str, alias: str) -> str | None:
        info = registry.by_alias(model, alias)
        if info is None or (alias == "challenger" and "rollback.at" in info.tags):
            return None
        return info.version

    return resolve


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--values", type=Path, help="The values file deployed (values-kind.yaml).")
    p.add_argument("--canary", help="Model whose challenger to deploy as a canary revision.")
    p.add_argument("--percent", type=int, default=10, help="The canary's first traffic share.")
    p.add_argument("--tracking-uri", help="MLflow URL; default: a port-forward to the release's.")
    p.add_argument("--context", default="kind-mlplatform", help="kubectl context.")
    p.add_argument("--kubectl", default="kubectl", help="kubectl binary.")
    p.add_argument("--release", default="mlplatform", help="Helm release of the platform.")
    p.add_argument("--namespace", default="mlplatform", help="Namespace of the release.")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="The user's helm --set flags (make deploy SET=): they decide the enabled models.",
    )
    args, _helm_only = p.parse_known_args(argv)  # other helm flags are helm's business
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    values = with_sets(chart_values(args.values), args.set)
    models = served_models(values)
    try:
        if args.tracking_uri:
            resolve = registry_resolver(args.tracking_uri)
            flags = version_flags(models, resolve, args.canary, args.percent)
        else:
            svc, port = f"{args.release}-mlflow", int(values["mlflow"]["port"])
            with forward(args.kubectl, args.context, args.namespace, svc, port) as url:
                flags = version_flags(models, registry_resolver(url), args.canary, args.percent)
    except RefusedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(flags))
    return 0


if __name__ == "__main__":
    sys.exit(main())
