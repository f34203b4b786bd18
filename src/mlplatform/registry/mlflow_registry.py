"""MLflow adapter: log a training run, register a model version with lineage, manage aliases.

Aliases: ``challenger`` (a validated candidate, served as the canary) and ``champion``
(what serves stable traffic). Every version carries its lineage as tags (``lineage.*``),
so ``mlplatform lineage <model>`` can answer the on-call questions from the registry alone.
Every version registered by the pipeline also carries its drift reference, a sample of its
training split logged to its run as ``reference/train_sample.parquet`` and read back with
:meth:`Registry.reference`, so the monitor in any pod compares traffic with what the serving
model was trained on.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlplatform.config import RegistryConfig
from mlplatform.core.model import LinearModel
from mlplatform.errors import ModelVersionNotFoundError, ReferenceNotFoundError
from mlplatform.registry.outage import bound_requests, reachable
from mlplatform.registry.uris import scoped_uris
from mlplatform.stores.migrate import ALEMBIC_LOCK

CHAMPION, CHALLENGER = "champion", "challenger"
#: What a logged model needs at load time (explicit, so MLflow does not spend seconds inferring).
PIP_REQUIREMENTS = ["numpy>=2.4,<2.5", "pandas>=2.3,<3", "scipy>=1.13"]
#: The drift reference of a version: an artifact of the version's run.
REFERENCE_DIR, REFERENCE_FILE = "reference", "train_sample.parquet"


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    run_id: str
    aliases: tuple[str, ...]
    tags: dict[str, str]
    created: str


def who() -> str:
    """The acting user: MLPLATFORM_ACTOR (set by CI or the cluster), else the login name."""
    return os.environ.get("MLPLATFORM_ACTOR") or getpass.getuser()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Registry:
    """A thin wrapper over one MLflow tracking/registry URI; MLflow's process-wide URIs are
    this registry's only inside its own fluent calls (:meth:`_fluent`)."""

    def __init__(self, cfg: RegistryConfig) -> None:
        import mlflow
        from mlflow import MlflowClient

        self.cfg = cfg
        if cfg.tracking_uri.startswith("sqlite:///"):
            Path(cfg.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        # Artifacts always through the tracking server: MLflow 3.17's client otherwise asks a
        # server with an S3 store for presigned URLs (mlflow_artifacts_repo._download_file),
        # which name the server's own S3 endpoint (the chart's short MinIO name, which pipeline
        # pods in the `kubeflow` namespace and a laptop behind a port-forward cannot resolve).
        os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
        bound_requests(cfg)  # a tracking server that is down: a quick RegistryUnavailableError
        self.mlflow = mlflow
        with ALEMBIC_LOCK, self.reachable():  # a first client migrates MLflow's database
            self.client = MlflowClient(cfg.tracking_uri, cfg.tracking_uri)

    def _fluent(self) -> contextlib.AbstractContextManager[None]:
        """This registry's URIs for MLflow's fluent calls, during the block only
        (:func:`~mlplatform.registry.uris.scoped_uris`)."""
        return scoped_uris(self.mlflow, self.cfg.tracking_uri)

    def reachable(self) -> contextlib.AbstractContextManager[None]:
        """MLflow's failures to reach this registry as :class:`RegistryUnavailableError`."""
        return reachable(self.cfg)

    def experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.cfg.experiment)
        if exp is not None:
            return str(exp.experiment_id)
        location = self.cfg.artifact_root
        if "://" not in location and not location.startswith("mlflow-artifacts:"):
            root = Path(location).resolve()  # a local folder (the embedded default)
            root.mkdir(parents=True, exist_ok=True)
            location = root.as_uri()
        return str(self.client.create_experiment(self.cfg.experiment, location))

    def log_and_register(
        self,
        model_path: Path,
        params: dict[str, Any],
        metrics: dict[str, float],
        artifacts: list[Path],
        lineage: dict[str, str],
        reference: pd.DataFrame | None = None,
    ) -> VersionInfo:
        """One MLflow run (params, metrics, plots, the pyfunc model, and ``reference``, the
        drift reference, as ``reference/train_sample.parquet``) and a new model version."""
        from mlplatform.registry.pyfunc import LinearPyfunc

        model = LinearModel.load(model_path)
        tags = {f"lineage.{k}": str(v) for k, v in lineage.items()}
        tags |= {"lineage.registered_by": who(), "lineage.registered_at": now()}
        experiment = self.experiment_id()
        with self._fluent():  # the model version's source (models:/<model id>) resolves too
            with self.mlflow.start_run(experiment_id=experiment) as run:
                self.mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
                self.mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
                self.mlflow.set_tags(tags)
                for path in artifacts:
                    self.mlflow.log_artifact(str(path), artifact_path="reports")
                with tempfile.TemporaryDirectory() as tmp:  # a KFP artifact has no .json suffix
                    if reference is not None:
                        sample = Path(tmp) / REFERENCE_FILE
                        reference.to_parquet(sample, index=False)
                        self.mlflow.log_artifact(str(sample), artifact_path=REFERENCE_DIR)
                    staged = shutil.copy(model_path, Path(tmp) / "model.json")
                    info = self.mlflow.pyfunc.log_model(
                        name="model",
                        python_model=LinearPyfunc(),
                        artifacts={"model": str(staged)},
                        pip_requirements=PIP_REQUIREMENTS,
                    )
            self._ensure_model(model.name)
            mv = self.client.create_model_version(  # a tracking server needs the model_id
                model.name,
                info.model_uri,
                run_id=run.info.run_id,
                tags=tags,
                model_id=info.model_id,
            )
        return self.version(model.name, str(mv.version))

    def _ensure_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            with self.reachable():
                self.client.get_registered_model(name)
        except MlflowException:  # 4xx: no such model yet
            self.client.create_registered_model(name)

    def version(self, name: str, version: str) -> VersionInfo:
        from mlflow.exceptions import MlflowException

        try:
            with self.reachable():
                mv = self.client.get_model_version(name, version)
        except MlflowException:  # 4xx: no such model or version
            raise ModelVersionNotFoundError(f"model {name!r} has no version {version}") from None
        created = datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC)
        return VersionInfo(
            name,
            str(mv.version),
            str(mv.run_id),
            tuple(mv.aliases or ()),
            dict(mv.tags or {}),
            created.isoformat(timespec="seconds"),
        )

    def by_alias(self, name: str, alias: str) -> VersionInfo | None:
        """The version holding ``alias``, or None if no version holds it (or no such model);
        :class:`RegistryUnavailableError` when the registry cannot say (down, timed out)."""
        from mlflow.exceptions import MlflowException

        try:
            with self.reachable():
                mv = self.client.get_model_version_by_alias(name, alias)
        except MlflowException:  # 4xx: no such alias or model
            return None
        return self.version(name, str(mv.version))

    def set_alias(self, name: str, alias: str, version: str, reason: str = "") -> None:
        """Point ``alias`` at ``version``, recording who and when on the version."""
        self.version(name, version)  # raises a clear error for an unknown version
        self.client.set_registered_model_alias(name, alias, version)
        self.client.set_model_version_tag(name, version, f"{alias}.set_by", who())
        self.client.set_model_version_tag(name, version, f"{alias}.set_at", now())
        if reason:
            self.client.set_model_version_tag(name, version, f"{alias}.reason", reason)

    def delete_alias(self, name: str, alias: str) -> None:
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException), self.reachable():  # 4xx: already gone
            self.client.delete_registered_model_alias(name, alias)

    def run_metrics(self, run_id: str) -> dict[str, float]:
        with self.reachable():
            return dict(self.client.get_run(run_id).data.metrics)

    def holder(self, name: str, alias: str) -> VersionInfo:
        """The version holding ``alias``; :class:`ModelVersionNotFoundError` if none does."""
        info = self.by_alias(name, alias)
        if info is None:
            raise ModelVersionNotFoundError(f"model {name!r} has no version with alias {alias!r}")
        return info

    def load(self, name: str, alias: str) -> LinearModel:
        """The :class:`LinearModel` behind ``models:/<name>@<alias>``."""
        self.holder(name, alias)
        return self._load_uri(f"models:/{name}@{alias}")

    def load_version(self, name: str, version: str) -> LinearModel:
        """The :class:`LinearModel` of ``models:/<name>/<version>`` (immutable, unlike an
        alias: what a deployment pins so that every later pod serves the same model)."""
        self.version(name, version)  # a clear error for an unknown version
        return self._load_uri(f"models:/{name}/{version}")

    def _load_uri(self, uri: str) -> LinearModel:
        with self.reachable(), self._fluent():
            local = self.mlflow.artifacts.download_artifacts(uri)
        return LinearModel.load(next(Path(local).rglob("model.json")))

    def reference(self, name: str, alias: str) -> pd.DataFrame:
        """The drift reference of the version holding ``alias`` (raw feature columns and the
        target of a seeded sample of its training split); :class:`ReferenceNotFoundError`
        when that version has none."""
        info = self.holder(name, alias)
        with self.reachable():
            listed = self.client.list_artifacts(info.run_id, REFERENCE_DIR)
        if not any(f.path == f"{REFERENCE_DIR}/{REFERENCE_FILE}" for f in listed):
            raise ReferenceNotFoundError(name, info.version)
        with tempfile.TemporaryDirectory() as tmp, self.reachable():
            local = self.mlflow.artifacts.download_artifacts(
                run_id=info.run_id,
                artifact_path=f"{REFERENCE_DIR}/{REFERENCE_FILE}",
                dst_path=tmp,
                tracking_uri=self.cfg.tracking_uri,
            )
            return pd.read_parquet(local)

    def versions(self, name: str) -> list[VersionInfo]:
        with self.reachable():
            found = self.client.search_model_versions(f"name = '{name}'")
        return sorted(
            (self.version(name, str(v.version)) for v in found), key=lambda v: int(v.version)
        )


def lineage_document(reg: Registry, name: str) -> dict[str, Any]:
    """The on-call answer: for champion and challenger, what serves, from which data, how it
    passed validation, who registered/promoted it and when."""
    out: dict[str, Any] = {"model": name, "tracking_uri": reg.cfg.tracking_uri, "aliases": {}}
    for alias in (CHAMPION, CHALLENGER):
        info = reg.by_alias(name, alias)
        if info is None:
            continue
        t = info.tags
        gate = t.get("lineage.validation")
        out["aliases"][alias] = {
            "version": info.version,
            "run_id": info.run_id,
            "data_version": t.get("lineage.data_md5"),
            "data_path": t.get("lineage.data_path"),
            "git_commit": t.get("lineage.git_commit"),
            "pipeline_run": t.get("lineage.pipeline_run_id"),
            "trigger": t.get("lineage.trigger"),
            "feature_service": t.get("lineage.feature_service"),
            "config_hash": t.get("lineage.config_hash"),
            "validation": json.loads(gate) if gate else None,
            "registered_by": t.get("lineage.registered_by"),
            "registered_at": t.get("lineage.registered_at"),
            "alias_set_by": t.get(f"{alias}.set_by"),
            "alias_set_at": t.get(f"{alias}.set_at"),
            "alias_reason": t.get(f"{alias}.reason"),
            "created": info.created,
        }
    return out
