"""The README's "Deploy on kind" story (steps 4-8) run as the rehearsal, step by step.

    python -m tests.support.rehearsal.story                  # make rehearse: both models
    python -m tests.support.rehearsal.story --model house-price

Every step is what the README's make target does, through the rehearsal's parts
(:mod:`.world`, :mod:`.kfp`, :mod:`.kserve`, :mod:`.ingress`, :mod:`.kube_api`; a laptop's
client and port-forwards in :mod:`.client`) and the real scripts (``scripts/kfp_pipeline.py``,
``scripts/serving_versions.py``); it adds no emulation:

1. ``make deploy SERVING=false``: the chart rendered with ``values-kind.yaml``, applied;
2. ``make cluster-data``: each model's dataset pushed to the release's DVC remote
   (``mlplatform data push``), and the ``kubeflow`` data Secret ``make deploy`` writes;
3. ``make pipeline-upload`` + ``make pipeline-run``: through the KFP stand-in → version 1;
4. ``make deploy SET=models.<m>.dataVersion=<md5>``: serving on, each predictor pinned to the
   champion's version as ``serving_versions.py`` reads it; the Kubernetes API stand-in seeds
   the InferenceServices and the KServe controller emulation runs them;
5. predict and explain through the ingress, with the ``Host`` header of each component;
6. a second ``make pipeline-run`` → the challenger;
7. ``make canary MODEL=<m> PERCENT=10``: re-rendered with the challenger's version and
   ``canaryTrafficPercent``, written to the API stand-in as ``helm upgrade`` writes it;
8. the rollout controller Deployment (the real ``mlplatform rollout --watch``) steps the canary
   and promotes it while a client sends traffic through the ingress;
9. the world shifts; the monitor CronJob run once as a Job → one alert;
10. the retrain CronJob run once as a Job → one KFP run → a new challenger;
11. ``make canary`` again with the retrained challenger; the rollout controller's pod is deleted
    at its second step (SIGTERM: it records where it stopped) and the replacement pod resumes at
    that step and promotes (:mod:`.story_canaries`);
12. afterwards: every request a client sent is in the payload log (by request id), explainer
    traffic is not, ``make deploy`` after the promotion starts no new revision, and a predictor
    pod restarted after the promotion serves the promoted version;
13. a corrupted challenger (the champion with its bias + 8, registered by hand) canaried at
    10 % is rolled back: 0 %, its alias dropped, the champion's revision answers everything.

**Rehearsal-sized settings.** The rollout's pace (``rollout.min_requests`` 200 canary requests
per step, ``max_step_seconds`` 300) and the monitor's window (``monitor.window_seconds`` 3600)
are fields of the model's config, ``configs/<model>.yaml``, which the chart packages into the
ConfigMap ``<release>-config``: no chart value reaches them, so no ``--set`` can. A user
shortens them by editing that file before ``make deploy``; the rehearsal makes the same edit
in the rendered ConfigMap (:data:`REHEARSAL_CONFIG`). ``max_p95_latency_ratio`` is widened
because every pod here shares this machine's cores with the clients and the tests.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml
from tests.support.chart import RELEASE, helm, load_all, template_args
from tests.support.rehearsal.client import Traffic, port_forward, script
from tests.support.rehearsal.ingress import Ingress
from tests.support.rehearsal.kfp import KfpBackend, kfp_backend
from tests.support.rehearsal.kserve import KServeController
from tests.support.rehearsal.pods import ClusterDns, kube_proxy
from tests.support.rehearsal.story_canaries import LaterCanaries
from tests.support.rehearsal.world import ROOT, World, generated_secrets, new_run_id

Obj = dict[str, Any]
NAMESPACE = "mlplatform"
ALL_MODELS = ("house-price", "credit-risk")  # models.* of the chart's values.yaml
VALUES = "values-kind.yaml"
POSTGRES_URL = os.environ.get(
    "MLPLATFORM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
#: The config sections the rehearsal shortens (see the module docstring).
REHEARSAL_CONFIG: Obj = {
    "rollout": {"min_requests": 50, "max_step_seconds": 120, "max_p95_latency_ratio": 4.0},
    "monitor": {"window_seconds": 60},
}


class StoryError(AssertionError):
    """A step found the platform not doing what the README says."""


def check(ok: object, message: str) -> None:
    if not ok:
        raise StoryError(message)


def with_rehearsal_config(docs: list[Obj]) -> list[Obj]:
    """The rendered ConfigMap ``<release>-config`` with :data:`REHEARSAL_CONFIG` in each
    model's YAML, as a user's edit of ``configs/<model>.yaml`` would render it."""
    for doc in docs:
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == f"{RELEASE}-config":
            for key, text in doc["data"].items():
                cfg = yaml.safe_load(text)
                for section, values in REHEARSAL_CONFIG.items():
                    cfg[section] = {**(cfg.get(section) or {}), **values}
                doc["data"][key] = yaml.safe_dump(cfg, sort_keys=False)
    return docs


@dataclass
class Story(LaterCanaries):
    """One rehearsal of the README's story; :meth:`run` takes the steps in order."""

    tmp: Path
    models: tuple[str, ...] = ("house-price",)
    progress: Callable[[str], None] = print
    run_id: str = field(default_factory=new_run_id)
    world: World = field(init=False)
    kfp: KfpBackend = field(init=False)
    ingress: Ingress = field(init=False)
    controller: KServeController = field(init=False)
    mlflow: str = ""
    data_versions: dict[str, str] = field(default_factory=dict)
    versions: dict[str, list[str]] = field(default_factory=dict)  # registered, in order
    promoted: dict[str, str] = field(default_factory=dict)
    traffic: list[Traffic] = field(default_factory=list)
    transformer_predicts: Counter[str] = field(default_factory=Counter)
    done: list[str] = field(default_factory=list)
    failed: str = ""  # the step that raised, if one did
    _stack: ExitStack = field(default_factory=ExitStack)

    STEPS = (
        ("deploy_platform", "make deploy SERVING=false"),
        ("cluster_data", "make cluster-data (and the kubeflow data Secret)"),
        ("first_training", "make pipeline-upload; make pipeline-run → champion"),
        ("deploy_serving", "make deploy: predictors pinned to the champion"),
        ("predict_and_explain", "predict and explain through the ingress"),
        ("second_training", "make pipeline-run → challenger"),
        ("canary", "make canary PERCENT=10"),
        ("rollout", "the rollout controller steps the canary and promotes it"),
        ("drift_alert", "the world shifts; the monitor CronJob writes one alert"),
        ("retrain", "the retrain CronJob starts one run → a new challenger"),
        (
            "canary_retrained",
            "make canary: the controller's pod deleted mid-step resumes, promotes",
        ),
        ("afterwards", "payload log complete, no explainer traffic, restarted predictor"),
        ("corrupted_rollback", "a corrupted challenger, canaried, is rolled back"),
    )

    # -- the whole story ---------------------------------------------------------------------
    def step(self, name: str) -> None:
        """Take step ``name`` (the next one in :data:`STEPS`), with its progress line."""
        names = [n for n, _ in self.STEPS]
        index = names.index(name)
        check(self.done == names[:index], f"{name}: earlier steps not done ({self.done})")
        self.progress(f"[{index + 1}/{len(self.STEPS)}] {self.STEPS[index][1]}")
        started = time.monotonic()
        getattr(self, name)()
        self.done.append(name)
        self.progress(f"      ({time.monotonic() - started:.0f}s)")

    def run(self) -> None:
        for name, _ in self.STEPS:
            self.step(name)

    # -- helpers -----------------------------------------------------------------------------
    def sets(self, serving: bool) -> list[str]:
        out = [
            f"serving.enabled={str(serving).lower()}",
            f"postgresql.database=mlflow_{self.run_id}",
            f"stores.database=mlplatform_{self.run_id}",
        ]
        out += [f"models.{m}.enabled=false" for m in ALL_MODELS if m not in self.models]
        out += [f"models.{m}.dataVersion={v}" for m, v in self.data_versions.items()]
        return out

    def render(self, serving: bool, flags: list[str] | None = None) -> list[Obj]:
        args = template_args(VALUES, *self.sets(serving), versions=False)
        return with_rehearsal_config(load_all(helm(*args, *(flags or [])).stdout))

    def serving_flags(self, canary: str | None = None) -> list[str]:
        """``scripts/serving_versions.py``'s flags, read from the release's MLflow. Its model
        list is the values file's enabled models; the story's own (``SET`` may disable one,
        which that script does not see)."""
        sv = script("serving_versions")
        values = sv.chart_values(ROOT / "helm" / "mlplatform" / VALUES)
        models = [m for m in sv.served_models(values) if m in self.models]
        flags: list[str] = sv.version_flags(models, sv.registry_resolver(self.mlflow), canary)
        self.progress(f"  serving: {' '.join(flags)}")
        return flags

    def mlflow_client(self) -> Any:
        """A client of the release's MLflow (its port-forward) for tracking AND registry: a
        client given only the tracking URI takes the process-wide registry URI, which
        anything in the test process may have set (``Registry`` itself did until it kept its
        URIs to its own fluent calls; then it was an earlier rehearsal's port-forward, long
        closed: the "refused" port-forward)."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.mlflow, registry_uri=self.mlflow)

    def aliases(self, model: str) -> dict[str, str]:
        return dict(self.mlflow_client().get_registered_model(model).aliases)

    def model_versions(self, model: str) -> list[str]:
        found = self.mlflow_client().search_model_versions(f"name = '{model}'")
        return sorted((v.version for v in found), key=int)

    def host(self, model: str, component: str) -> str:
        assert self.world.kube is not None
        status = self.world.kube.api.get(model)["status"]
        return str(status["components"][component]["url"]).removeprefix("http://")

    def post(
        self, model: str, component: str, path: str, body: Obj, rid: str | None = None
    ) -> httpx.Response:
        headers = {"Host": self.host(model, component)} | ({"Ce-Id": rid} if rid else {})
        return httpx.post(
            f"http://{self.ingress.ip}{path}", json=body, headers=headers, timeout=120
        )

    def feature_rows(self, model: str, shift: float, n: int) -> list[Obj]:
        from mlplatform.config import load_config
        from mlplatform.demo.rig import shifted_world

        cfg = load_config(ROOT / "configs" / f"{model}.yaml", env={})
        frame = shifted_world(cfg, shift).head(n)[list(cfg.feature_names)]
        rows: list[Obj] = json.loads(frame.to_json(orient="records"))
        return rows

    def stores(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        secret = self.world.secrets["mlplatform-stores"]
        server = urlsplit(POSTGRES_URL)
        with psycopg.connect(
            host=server.hostname,
            port=server.port or 5432,
            dbname=f"mlplatform_{self.run_id}",
            user=secret["username"],
            password=secret["password"],
        ) as conn:
            return list(conn.execute(sql, params).fetchall())

    def pipeline_run(self, model: str, upload: bool = False) -> Obj:
        """(``make pipeline-upload``, then) ``make pipeline-run MODEL=<m> DATA_VERSION=<md5>``,
        waiting for the run; ``kubectl get configmap`` answered from the rendered one."""
        kfp_script = script("kfp_pipeline")
        data = self.world.get("ConfigMap", f"{RELEASE}-pipeline")["data"]
        kfp_script.pipeline_configmap = lambda args: data
        client = kfp_script.client(self.kfp.url)
        if upload:
            kfp_script.upload(client, kfp_script.PIPELINE)
        before = len(self.kfp.runs)
        args = argparse.Namespace(
            config=ROOT / "configs" / f"{model}.yaml",
            data_version=self.data_versions[model],
            pipeline=kfp_script.PIPELINE,
            wait=900,
        )
        with suppress(SystemExit):
            kfp_script.run(client, args)
        (run,) = self.kfp.runs[before:]
        check(run["state"] == "SUCCEEDED", f"{model}: {self.kfp.log(run['run_id'])[-3000:]}")
        return run

    def wait_run(self, run_id: str, timeout: float = 900) -> str:
        (run,) = [r for r in self.kfp.runs if r["run_id"] == run_id]
        deadline = time.monotonic() + timeout
        while run["state"] in ("PENDING", "RUNNING") and time.monotonic() < deadline:
            time.sleep(1)
        return str(run["state"])

    # -- the steps ---------------------------------------------------------------------------
    def deploy_platform(self) -> None:
        from tests.support.services import with_database

        self.tmp.mkdir(parents=True, exist_ok=True)
        proxy = self._stack.enter_context(kube_proxy())
        admin = with_database(POSTGRES_URL, "postgres", "postgresql")
        secrets = generated_secrets(self.run_id)
        self.world = World(self.tmp, NAMESPACE, secrets, ClusterDns(), proxy, admin)
        self._stack.callback(self._cleanup_postgres)
        self._stack.callback(self.world.stop)
        self.world.apply(self.render(serving=False), progress=self.progress)
        self.mlflow = port_forward(self.world, f"{RELEASE}-mlflow", 5000)

    def _cleanup_postgres(self) -> None:
        stores = self.world.secrets["mlplatform-stores"]["username"]
        self.world.cleanup_postgres([f"mlplatform_{self.run_id}"], [stores])

    def cluster_data(self) -> None:
        """scripts/cluster_data.sh: `mlplatform data` then `data push` to the release's remote
        with the release's key pair, through the MinIO Service (its port-forward)."""
        s3 = self.world.secrets["mlplatform-s3"]
        minio = self.world.dns.services[(NAMESPACE, f"{RELEASE}-minio")]
        remote = self.world.get("ConfigMap", f"{RELEASE}-pipeline")["data"]
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": s3["access-key-id"],
            "AWS_SECRET_ACCESS_KEY": s3["secret-access-key"],
            "AWS_ENDPOINT_URL": f"http://{minio}:9000",
            "MLPLATFORM__DATA__DATA_DIR": str(self.tmp / "laptop-data"),
        }
        cli = str(Path(sys.executable).parent / "mlplatform")
        for model in self.models:
            config = str(ROOT / "configs" / f"{model}.yaml")
            for cmd in (["data"], ["data", "push", "--remote", remote["MLPLATFORM__DATA__REMOTE"]]):
                done = subprocess.run(
                    [cli, *cmd, "--config", config], env=env, cwd=ROOT, capture_output=True,
                    text=True, timeout=300,
                )  # fmt: skip
                check(done.returncode == 0, f"{model}: {cmd}: {done.stderr[-2000:]}")
            self.data_versions[model] = done.stdout.strip().splitlines()[-1]
            self.progress(f"  {model} {self.data_versions[model]}")
        secret = {  # scripts/deploy.sh pipeline_data_secret
            "access-key-id": s3["access-key-id"],
            "secret-access-key": s3["secret-access-key"],
            "endpoint-url": f"http://{RELEASE}-minio.{NAMESPACE}.svc.cluster.local:9000",
        }
        self.kfp = self._stack.enter_context(
            kfp_backend(self.world, {"mlplatform-pipeline-data": secret})
        )
        self.progress("  secret/mlplatform-pipeline-data in namespace kubeflow")

    def first_training(self) -> None:
        """The first validated version becomes ``champion`` (and ``challenger``: the register
        step sets both; the rollout controller ignores a challenger that is the champion)."""
        for model in self.models:
            self.pipeline_run(model, upload=model == self.models[0])
            self.versions[model] = self.model_versions(model)
            aliases = self.aliases(model)
            self.progress(f"  {model}: versions {self.versions[model]}, aliases {aliases}")
            check(len(self.versions[model]) == 1, f"{model}: {self.versions[model]}")
            check(aliases.get("champion") == self.versions[model][0], f"{model}: {aliases}")

    def deploy_serving(self) -> None:
        docs = self.render(serving=True, flags=self.serving_flags())
        for name, work in self.world.workloads.items():  # helm upgrade: nothing to roll
            new = [d for d in docs if d["kind"] == work.obj["kind"]]
            (same,) = [d for d in new if d["metadata"]["name"] == name]
            check(same["spec"] == work.obj["spec"], f"helm upgrade would roll {name}")
        self.world.docs = docs
        self.ingress = Ingress(self.world.dns)
        self._stack.callback(self.ingress.close)
        self.controller = KServeController(self.world, self.ingress)
        self._stack.callback(self.controller.stop)
        api = self.world.start_kube_api(self.controller.apply)
        check(not api.api.reconcile_errors, f"controller: {api.api.reconcile_errors}")
        for model in self.models:
            status = api.api.get(model)["status"]
            check({"type": "Ready", "status": "True"} in status["conditions"], f"{status}")
            self.progress(f"  inferenceservice/{model}: Ready, {self.served(model)}")

    def served(self, model: str) -> str:
        assert self.world.kube is not None
        spec = self.world.kube.api.get(model)["spec"]["predictor"]
        percent = spec.get("canaryTrafficPercent")
        return f"{spec['labels']['endpoint']}" + (
            f" canary {percent}%" if percent is not None else ""
        )

    def predict_and_explain(self) -> None:
        for model in self.models:
            rows = self.feature_rows(model, 0.0, 2)
            path = f"/v1/models/{model}"
            r = self.post(model, "transformer", f"{path}:predict", {"instances": rows})
            self.transformer_predicts[model] += 1
            check(r.status_code == 200, f"{model} predict: {r.status_code} {r.text[:500]}")
            champion = self.versions[model][0]
            check(str(r.json().get("model_version")) == champion, f"{model}: {r.text[:300]}")
            events = sum(a.sent for a in self.ingress.agents)
            e = self.post(model, "explainer", f"{path}:explain", {"instances": rows[:1]})
            self.ingress.drain()
            check(sum(a.sent for a in self.ingress.agents) > events, "explainer: no predictor call")
            check(e.status_code == 200, f"{model} explain: {e.status_code} {e.text[:500]}")
            (explanation,) = e.json()["explanations"]
            check("lime" in explanation, f"{model} explain: {e.text[:500]}")
            self.progress(
                f"  {model}: predict {r.json()['predictions']}, explain {sorted(explanation)}"
            )

    def second_training(self) -> None:
        for model in self.models:
            self.pipeline_run(model)
            self.versions[model] = self.model_versions(model)
            aliases = self.aliases(model)
            self.progress(f"  {model}: versions {self.versions[model]}, aliases {aliases}")
            first, second = self.versions[model]
            check(aliases == {"champion": first, "challenger": second}, f"{model}: {aliases}")

    @property
    def canaried(self) -> tuple[str, ...]:
        """The model the README canaries (the first): a `make canary` pins every other model
        to its champion, so a second model's canary would be a second story."""
        return self.models[:1]

    def canary(self) -> None:
        for model in self.canaried:
            self.make_canary(model)

    def rollout(self) -> None:
        assert self.world.kube is not None
        api = self.world.kube.api
        client = Traffic(
            self.post, self.models, {m: self.feature_rows(m, 0.0, 500) for m in self.models}
        )
        self.traffic.append(client)
        client.start()
        try:
            works = self.world.start_rollout(self.progress)
            seen: dict[str, list[object]] = {m: [] for m in self.canaried}
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                for model in self.canaried:
                    percent = api.get(model)["spec"]["predictor"].get("canaryTrafficPercent")
                    if not seen[model] or seen[model][-1] != percent:
                        seen[model].append(percent)
                        self.progress(f"  {model}: canaryTrafficPercent {percent}")
                if all(self._promoted(m) for m in self.canaried):
                    break
                for w in works:
                    alive = w.pods[0].process is not None and w.pods[0].process.poll() is None
                    check(
                        alive, f"{w.name} exited: {self.world.log(w.pods[0]).read_text()[-3000:]}"
                    )
                time.sleep(1)
        finally:
            client.stop()
        self.promoted = {m: self.versions[m][0] for m in self.models}  # champions
        for model, w in itertools.product(self.canaried, works):
            if w.name != f"{RELEASE}-rollout-{model}":
                continue
            log = self.world.log(w.pods[0]).read_text(errors="replace")
            check(self._promoted(model), f"{model}: not promoted; rollout log:\n{log[-3000:]}")
            self.promoted[model] = self.versions[model][-1]
            self.progress(f"  {model}: promoted v{self.promoted[model]}; steps {seen[model]}")
        check(not client.failed, f"client errors: {client.failed[:5]}")
        self.progress(f"  client: {len(client.sent)} requests, answered {dict(client.answered)}")

    def _promoted(self, model: str) -> bool:
        """The promotion is finished: the canary share gone, ``champion`` on the new version
        and ``challenger`` no longer on it (the controller moves ``champion`` first, then
        deletes ``challenger``; a poll between the two saw both on it)."""
        assert self.world.kube is not None
        spec = self.world.kube.api.get(model)["spec"]["predictor"]
        aliases, version = self.aliases(model), self.versions[model][-1]
        return (
            "canaryTrafficPercent" not in spec
            and aliases.get("champion") == version
            and aliases.get("challenger") != version
        )

    def drift_alert(self) -> None:
        """Shifted traffic until a monitor window is covered from its start, then the monitor
        CronJob's jobTemplate as a Job (``kubectl create job --from=cronjob/...``)."""
        window = float(REHEARSAL_CONFIG["monitor"]["window_seconds"])
        client = Traffic(
            self.post,
            self.models,
            {m: self.feature_rows(m, 2.0, 500) for m in self.models},
            batch=5,
        )
        self.traffic.append(client)
        now = time.time()
        end = (now // window + 1) * window  # the current window, if most of it is left
        if end - now < 0.4 * window:
            end += window
        client.start(workers=2, pause=0.2)
        time.sleep(max(0.0, end - time.time() + 1))
        client.stop()
        self.ingress.drain()
        self.progress(f"  client: {len(client.sent)} shifted requests")
        for model in self.models:
            self.world.run_job(self.job_from(f"{RELEASE}-monitor-{model}"), self.progress)
            alerts = self.stores(
                "SELECT alert_id, status, reasons FROM alerts WHERE model = %s", model
            )
            self.progress(f"  {model}: alerts {alerts}")
            check(len(alerts) == 1 and alerts[0][1] == "open", f"{model}: alerts {alerts}")

    def job_from(self, cronjob: str) -> Obj:
        spec = self.world.get("CronJob", cronjob)["spec"]["jobTemplate"]["spec"]
        return {"metadata": {"name": f"{cronjob}-manual"}, "spec": spec}

    def retrain(self) -> None:
        for model in self.models:
            before = len(self.kfp.runs)
            self.world.run_job(self.job_from(f"{RELEASE}-retrain-{model}"), self.progress)
            started = self.kfp.runs[before:]
            check(
                len(started) == 1, f"{model}: runs started {[r['display_name'] for r in started]}"
            )
            (run,) = started
            state = self.wait_run(run["run_id"])
            check(state == "SUCCEEDED", f"{model}: {self.kfp.log(run['run_id'])[-3000:]}")
            self.versions[model] = self.model_versions(model)
            aliases = self.aliases(model)
            alerts = self.stores("SELECT status, run_id FROM alerts WHERE model = %s", model)
            self.progress(f"  {model}: run {run['display_name']}, aliases {aliases}")
            self.progress(f"  {model}: alerts {alerts}")
            check([a[1] for a in alerts] == [run["run_id"]], f"{model}: alerts {alerts}")
            check(aliases.get("challenger") == self.versions[model][-1], f"{aliases}")
            check(aliases.get("champion") == self.promoted[model], f"{aliases}")

    def afterwards(self) -> None:
        self.ingress.drain()
        for model in self.models:
            logged = {
                r[0] for r in self.stores("SELECT request_id FROM payloads WHERE model = %s", model)
            }
            sent = {rid for t in self.traffic for m, rid in t.sent if m == model}
            missing = sent - logged
            check(not missing, f"{model}: {len(missing)} of {len(sent)} client requests not logged")
            others = logged - sent  # predicts through the transformer: ids the agent made
            check(
                len(others) == self.transformer_predicts[model],
                f"{model}: {len(others)} logged requests no client sent by id "
                f"(explainer traffic?), expected {self.transformer_predicts[model]}",
            )
            self.progress(f"  {model}: {len(sent)} client requests all logged, no others")
            self.redeploy_after_promotion(model)
            self.controller.restart(model)
            rows = self.feature_rows(model, 0.0, 1)
            r = self.post(model, "predictor", f"/v1/models/{model}:predict", {"instances": rows})
            check(r.status_code == 200, f"{model}: {r.status_code} {r.text[:300]}")
            version = str(r.json()["model_version"])
            check(version == self.promoted[model], f"{model}: restarted pod serves v{version}")
            self.progress(f"  {model}: predictor pod restarted, serves v{version}")

    def redeploy_after_promotion(self, model: str) -> None:
        """The README's `make deploy` after a promotion: the champion's version is what the
        promoted revision serves, so no new revision starts."""
        assert self.world.kube is not None
        before = [r.name for r in self.controller.revisions(model)]
        docs = self.render(serving=True, flags=self.serving_flags())
        (isvc,) = [
            d for d in docs if d["kind"] == "InferenceService" and d["metadata"]["name"] == model
        ]
        self.world.kube.api.admin_apply(isvc)
        after = [r.name for r in self.controller.revisions(model)]
        check(after == before, f"{model}: make deploy after promotion: {before} -> {after}")
        self.progress(f"  {model}: make deploy after promotion: no new revision ({after[-1]})")

    def close(self) -> None:
        for t in self.traffic:
            t.stop()
        self._stack.close()


@contextmanager
def story(
    tmp: Path, models: tuple[str, ...], progress: Callable[[str], None] = print
) -> Iterator[Story]:
    s = Story(tmp, models, progress)
    try:
        yield s
    finally:
        s.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", choices=ALL_MODELS, help="Default: both.")
    p.add_argument("--keep", action="store_true", help="Keep the rehearsal's folder (logs).")
    args = p.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's S3 server: one line a call
    tmp = Path(tempfile.mkdtemp(prefix="rehearsal-"))
    print(f"rehearsal folder (pod logs under logs/): {tmp}")
    started = time.monotonic()
    try:
        with story(tmp, tuple(args.model or ALL_MODELS), lambda line: print(line, flush=True)) as s:
            s.run()
    except StoryError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        print(f"{time.monotonic() - started:.0f}s")
        if not args.keep:
            subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
