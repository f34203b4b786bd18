"""EMULATED: KFP 2.17's API server and backend, so an uploaded pipeline runs in the rehearsal.

``tests/support/kfp_api.py`` only stores runs; this stand-in also runs them, the way a
standalone KFP 2.17.0 install does (sources read at tag 2.17.0 of kubeflow/pipelines):

* **API**: the REST calls the pinned SDK makes (``kfp_server_api`` 2.17.3, ``api/*_api.py``):
  healthz; ``pipelines`` list by name, ``pipelines/upload`` and ``pipelines/upload_version``
  (multipart ``uploadfile``), a pipeline's ``versions``; ``experiments`` and ``runs`` (create,
  list by name, get one). A list ``filter`` may only be ``EQUALS`` on ``display_name`` (the
  SDK sends ``operation: 1`` and ``stringValue``; the retrain trigger ``"EQUALS"`` and
  ``string_value``: the backend's proto JSON accepts both); anything else answers 400.
* **A run** goes ``PENDING`` → ``RUNNING`` → ``SUCCEEDED``/``FAILED``. Its spec (sent with
  the run, or an uploaded version it references) runs with ``kfp.local`` (SubprocessRunner,
  no venv: the image's Python is this machine's) in a host process that plays KFP's driver and
  Argo; kfp.local walks the DAG, honours ``dsl.If`` and decides caching.
* **Each task in a pod of its own** in namespace ``kubeflow`` (:mod:`.pods`): the image root
  read-only at ``/app`` (its WORKDIR), the image's ``ENV`` (so ``HOME=/tmp``: KFP sets no HOME,
  ``backend/src/v2/driver`` has none), ``KFP_POD_NAME``/``KFP_POD_UID``
  (``compiler/argocompiler/common.go`` commonEnvs), the launcher's emptyDirs ``/gcs /s3 /minio
  /.local /.cache /.config`` (``argocompiler/container.go``) and a fresh ``/tmp``: task pods
  get no ``readOnlyRootFilesystem`` (``argocompiler/security_context.go``), so the image's
  world-writable ``/tmp`` is writable there. Artifacts live where the launcher puts those of
  the default root ``minio://mlpipeline/v2/artifacts`` (``v2/config/env.go``) on local disk,
  ``/minio/mlpipeline/v2/artifacts/...`` (``component/launcher_v2.go`` LocalPathForURI): one
  folder of the run, mounted there in every task pod (instead of a download and an upload).
* **Platform spec** (kfp-kubernetes): ``secretAsEnv`` and ``configMapAsEnv`` become the task's
  env from this stand-in's Secrets/ConfigMaps of ``kubeflow``, the name literal or resolved from
  a pipeline parameter (``v2/driver/k8s.go``); a missing optional one is left out, a missing
  required one fails the run before any pod starts (on a cluster the task's pod would hang in
  CreateContainerConfigError). Any other Kubernetes setting fails the run ("not emulated")
  rather than being ignored.
* **Caching**: the driver looks a task up in the cache only when ``cachingOptions.enableCache``
  (``v2/driver/cache.go``); here kfp.local's cache (``enable_caching=True``, one cache folder for
  every run of this stand-in) does the same, keyed on component, image, command, inputs, env.

Not emulated (gaps of kfp.local or of this stand-in): tasks run one after another (Argo starts
independent tasks together); ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` is kfp.local's
``<pipeline>-<timestamp>``, not the run's; artifacts sit in a folder shared by the run's pods,
not in object storage; a run's own ``pipeline_root``; Secret/ConfigMap names from a nested
DAG's inputs; the UI's log API (:meth:`KfpBackend.log` instead); recurring runs, retries.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from tests.support.kfp_api import check_spec, matches
from tests.support.rehearsal.pods import (
    ClusterDns,
    Pod,
    ServicePort,
    Volume,
    ensure_mount_point,
    image_env,
)
from tests.support.rehearsal.world import ROOT, World

API = "/apis/v2beta1"
NAMESPACE = "kubeflow"
ARTIFACTS = "/minio/mlpipeline/v2/artifacts"
SCRATCH = ("/gcs", "/s3", "/minio", "/.local", "/.cache", "/.config")
ENV_KINDS = {
    "secretAsEnv": ("secret", "secretKey"),
    "configMapAsEnv": ("configMap", "configMapKey"),
}
Obj = dict[str, Any]
Reply = tuple[int, Obj] | None


class LaunchError(Exception):
    """A task's pod cannot be made from its platform spec."""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -- the platform spec: kfp-kubernetes env of each executor ------------------------------------
def with_task_env(doc: Obj, params: Obj, objects: dict[str, dict[str, dict[str, str]]]) -> Obj:
    """The pipeline spec with each executor's Kubernetes env (Secrets and ConfigMaps of
    ``kubeflow``, ``objects["secret"|"configMap"][name][key]``) as literal container env."""
    spec: Obj = json.loads(json.dumps(doc.get("pipeline_spec", doc)))
    platform = doc.get("platform_spec", {}).get("platforms", {}).get("kubernetes", {})
    for label, config in platform.get("deploymentSpec", {}).get("executors", {}).items():
        if set(config) - set(ENV_KINDS):
            raise LaunchError(f"{label}: not emulated: {sorted(set(config) - set(ENV_KINDS))}")
        env = spec["deploymentSpec"]["executors"][label]["container"].setdefault("env", [])
        for kind, (obj_kind, key_field) in ENV_KINDS.items():
            for source in config.get(kind, []):
                env += _env_from(source, obj_kind, key_field, params, objects[obj_kind])
    return spec


def _env_from(
    source: Obj, kind: str, key_field: str, params: Obj, found: dict[str, dict[str, str]]
) -> list[dict[str, str]]:
    name = source.get(f"{kind}Name") or _parameter(source[f"{kind}NameParameter"], params)
    data, optional = found.get(name), bool(source.get("optional"))
    out = []
    for pair in source.get("keyToEnv", []):
        value = (data or {}).get(pair[key_field])
        if value is None and not optional:  # the kubelet: CreateContainerConfigError
            raise LaunchError(f"{kind} {NAMESPACE}/{name} has no key {pair[key_field]!r}")
        if value is not None:
            out.append({"name": pair["envVar"], "value": value})
    return out


def _parameter(ref: Obj, params: Obj) -> str:
    if "runtimeValue" in ref:
        return str(ref["runtimeValue"]["constant"])
    if ref.get("componentInputParameter") not in params:  # e.g. a nested DAG's input
        raise LaunchError(f"not emulated: a Kubernetes object named by {ref}")
    return str(params[ref["componentInputParameter"]])


def defaults(spec: Obj) -> Obj:
    inputs = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    return {k: v["defaultValue"] for k, v in inputs.items() if "defaultValue" in v}


# -- the backend: state and runs -------------------------------------------------------------
@dataclass
class KfpBackend:
    """The stand-in's objects, and the runs it executes for ``world``."""

    world: World
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    url: str = ""
    pipelines: list[Obj] = field(default_factory=list)
    versions: list[Obj] = field(default_factory=list)
    experiments: list[Obj] = field(default_factory=list)
    runs: list[Obj] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    workers: list[threading.Thread] = field(default_factory=list)
    drivers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.world.tmp / "kfp"

    def log(self, run_id: str) -> str:
        path = self.home / "runs" / run_id / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, run: Obj) -> None:
        worker = threading.Thread(target=self._execute, args=(run,), daemon=True)
        self.workers.append(worker)
        worker.start()

    def _execute(self, run: Obj) -> None:
        """The run to its end; any error of the stand-in itself fails the run, never hangs it."""
        try:
            folder = self._prepare(run)
            self._update(run, state="RUNNING")
            with (folder / "log").open("ab") as log:
                argv = [sys.executable, "-c", DRIVE, str(folder / "job.json")]
                driver = subprocess.Popen(
                    argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
                self.drivers[run["run_id"]] = driver
                code = driver.wait()
            if run["state"] == "CANCELED":
                return
            result = folder / "result.json"
            error = json.loads(result.read_text())["error"] if result.exists() else None
            if code != 0 and error is None:
                error = self.log(run["run_id"])[-3000:]
            self._finish(run, "SUCCEEDED" if code == 0 else "FAILED", error)
        except Exception as exc:  # reported in the run, as KFP reports a run error
            self._finish(run, "FAILED", f"{type(exc).__name__}: {exc}")

    def _prepare(self, run: Obj) -> Path:
        """The run's folder: its pipeline spec with each task's env, and ``job.json``."""
        folder: Path = self.home / "runs" / str(run["run_id"])
        (folder / "artifacts").mkdir(parents=True)
        doc = self._doc(run)
        params = {**defaults(doc.get("pipeline_spec", doc)), **run["runtime_config"]["parameters"]}
        objects = {"secret": self.secrets, "configMap": self.config_maps}
        (folder / "pipeline.yaml").write_text(yaml.safe_dump(with_task_env(doc, params, objects)))
        job = {
            "run": run["display_name"],
            "folder": str(folder),
            "parameters": params,
            "cache": str(self.home / "cache"),
            "ip": self.world.dns.pod_ip(),  # one address for the run's task pods (in turn)
            "services": [[*k, v] for k, v in self.world.dns.services.items()],
            "image_root": str(self.world.image_root),
        }
        (folder / "job.json").write_text(json.dumps(job))
        return folder

    def terminate(self, run_id: str) -> None:
        """Stop a run and every pod of it (its driver's process group), as ``:terminate``."""
        driver = self.drivers.get(run_id)
        if driver is not None and driver.poll() is None:
            (run,) = [r for r in self.runs if r["run_id"] == run_id]
            self._update(run, state="CANCELED", finished_at=now())
            os.killpg(driver.pid, signal.SIGKILL)

    def tasks(self, run_id: str) -> list[Obj]:
        """The run's task pods: ``task``, ``pod`` (name), ``exit_code``, ``tail`` (of its log)."""
        result = self.home / "runs" / run_id / "result.json"
        tasks: list[Obj] = json.loads(result.read_text())["tasks"] if result.exists() else []
        return tasks

    def _doc(self, run: Obj) -> Obj:
        if run.get("pipeline_spec"):
            return dict(run["pipeline_spec"])
        ref = run["pipeline_version_reference"]
        (version,) = [
            v for v in self.versions if v["pipeline_version_id"] == ref["pipeline_version_id"]
        ]
        return dict(version["pipeline_spec"])

    def _update(self, run: Obj, **changes: Any) -> None:
        with self.lock:
            run.update(changes)
            if "state" in changes:
                run["state_history"].append({"update_time": now(), "state": changes["state"]})

    def _finish(self, run: Obj, state: str, error: str | None) -> None:
        extra = {"error": {"code": 2, "message": error}} if error else {}
        self._update(run, state=state, finished_at=now(), **extra)


DRIVE = "import sys; from tests.support.rehearsal.kfp import drive; drive(sys.argv[1])"


# -- in the driver process: kfp.local with a pod per task --------------------------------------
def drive(job_file: str) -> None:
    """Run one pipeline run (``job.json`` from :meth:`KfpBackend._execute`) with kfp.local,
    every task's command in a pod; ``result.json`` gets the error, exit 1 on failure."""
    import warnings

    from kfp import components, local
    from kfp.local import subprocess_task_handler

    job = json.loads(Path(job_file).read_text())
    folder = Path(job["folder"])
    tasks: list[Obj] = []

    def run_task(full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        return task_pod(job, full_command, env_vars or {}, tasks)

    subprocess_task_handler.run_local_subprocess = run_task
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(folder / "artifacts"),
        enable_caching=True,
        cache_root=job["cache"],
    )
    pipeline = components.load_component_from_file(str(folder / "pipeline.yaml"))
    error = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "non-Python base image": it is ours
        try:
            pipeline(**job["parameters"])
        except RuntimeError as exc:  # kfp.local: "... finished with status FAILURE ..."
            failed = [t for t in tasks if t["exit_code"] != 0]
            error = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # kfp.local colours its message
            error += "".join(f"\n{t['task']}: {t['tail']}" for t in failed)
    (folder / "result.json").write_text(json.dumps({"error": error, "tasks": tasks}))
    sys.exit(0 if error is None else 1)


def task_pod(job: Obj, command: list[str], env_vars: dict[str, str], tasks: list[Obj]) -> int:
    """One task's command in a pod of ``kubeflow`` (see the module docstring); its exit code.
    Its log is printed (kfp.local streams a task's output) and kept for the run's error."""
    root = str(Path(job["folder"]) / "artifacts")
    task = command[command.index("--function_to_execute") + 1]
    name = re.sub(r"[^a-z0-9-]+", "-", f"{job['run']}-{task}-{uuid.uuid4().hex[:5]}".lower())
    where = Path(job["folder"]) / "pods" / name
    volumes = [Volume(path, where / "volumes" / path.strip("/.")) for path in SCRATCH]
    volumes += [Volume("/tmp", where / "volumes" / "tmp"), Volume(ARTIFACTS, Path(root))]
    for v in volumes[:-1]:
        v.source.mkdir(parents=True, exist_ok=True)
    (where / "volumes" / "minio" / ARTIFACTS.removeprefix("/minio/")).mkdir(parents=True)
    env = {**image_env(ROOT / "images" / "Dockerfile"), **env_vars}
    env |= {"KFP_POD_NAME": name, "KFP_POD_UID": str(uuid.uuid4())}
    argv = [part.replace(root, ARTIFACTS) for part in command]
    pod = Pod(name, NAMESPACE, argv, env, volumes, Path(job["image_root"]), ip=job["ip"])
    dns = ClusterDns(services={(ns, svc): ip for ns, svc, ip in job["services"]})
    code = pod.start(dns, where / "run", where / "log").wait()
    text = (where / "log").read_text(errors="replace")
    print(text, flush=True)
    tasks.append({"task": task, "pod": name, "exit_code": code, "tail": text[-2000:]})
    return code


# -- the API server ------------------------------------------------------------------------
def _upload(headers: Any, body: bytes) -> Obj:
    """The ``uploadfile`` of a multipart body: the compiled YAML, as the SDK sends it."""
    head = f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode()
    message = message_from_bytes(head + body, policy=HTTP)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "uploadfile":
            docs = [d for d in yaml.safe_load_all(bytes(part.get_payload(decode=True))) if d]
            doc = {"pipeline_spec": docs[0], "platform_spec": docs[1]} if len(docs) > 1 else docs[0]
            check_spec(doc)
            return dict(doc)
    raise ValueError("no uploadfile in the request")


def _handler(kfp: KfpBackend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, body: Obj) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            path = parts.path.removeprefix(API).strip("/").split("/")
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                with kfp.lock:
                    status, reply = route(kfp, method, path, query, body, self.headers)
            except (ValueError, KeyError) as exc:
                status, reply = 400, {"error": str(exc)}
            self._reply(status, reply)

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

    return Handler


def route(
    kfp: KfpBackend, method: str, path: list[str], query: dict[str, str], body: bytes, headers: Any
) -> tuple[int, Obj]:
    """One API call under ``kfp.lock``: (status, JSON body)."""
    reply = (_get if method == "GET" else _post)(kfp, path, query, body, headers)
    return reply or (404, {"error": f"not emulated: {method} {'/'.join(path)}"})


def _get(kfp: KfpBackend, path: list[str], query: dict[str, str], *_: Any) -> Reply:
    found = {"pipelines": kfp.pipelines, "experiments": kfp.experiments, "runs": kfp.runs}
    if path == ["healthz"]:
        return 200, {"multi_user": False}
    if len(path) == 1 and path[0] in found:
        hits = [o for o in found[path[0]] if matches(o, query.get("filter"))]
        if "experiment_id" in query:
            hits = [o for o in hits if o.get("experiment_id") == query["experiment_id"]]
        size = int(query.get("page_size") or 0) or len(hits)
        return 200, {path[0]: hits[:size], "total_size": len(hits)} if hits else {}
    if path[0] == "runs" and len(path) == 2:
        runs = [r for r in kfp.runs if r["run_id"] == path[1]]
        return (200, runs[0]) if runs else (404, {"error": f"run {path[1]} not found"})
    if path[0] == "pipelines" and path[2:] == ["versions"]:
        hits = [v for v in kfp.versions if v["pipeline_id"] == path[1]]
        return 200, {"pipeline_versions": hits, "total_size": len(hits)} if hits else {}
    return None


def _post(
    kfp: KfpBackend, path: list[str], query: dict[str, str], body: bytes, headers: Any
) -> Reply:
    if path == ["pipelines", "upload"]:
        pipeline = {"pipeline_id": uuid.uuid4().hex, "display_name": query["name"]}
        kfp.pipelines.append({**pipeline, "created_at": now()})
        _add_version(kfp, pipeline["pipeline_id"], query["name"], _upload(headers, body))
        return 200, kfp.pipelines[-1]
    if path == ["pipelines", "upload_version"]:
        if not any(p["pipeline_id"] == query["pipelineid"] for p in kfp.pipelines):
            return 404, {"error": f"pipeline {query['pipelineid']} not found"}
        return 200, _add_version(kfp, query["pipelineid"], query["name"], _upload(headers, body))
    if path[0] == "runs" and len(path) == 2 and path[1].endswith(":terminate"):
        kfp.terminate(path[1].removesuffix(":terminate"))
        return 200, {}
    if path == ["experiments"]:
        kfp.experiments.append({**json.loads(body), "experiment_id": uuid.uuid4().hex})
        return 200, kfp.experiments[-1]
    if path == ["runs"]:
        run = json.loads(body)
        if run.get("pipeline_spec"):
            check_spec(run["pipeline_spec"])  # the server's validation (kfp_api.py)
        run |= {"run_id": uuid.uuid4().hex, "state": "PENDING", "created_at": now()}
        run |= {"state_history": [{"update_time": now(), "state": "PENDING"}]}
        run.setdefault("runtime_config", {}).setdefault("parameters", {})
        kfp.runs.append(run)
        kfp.start(run)
        return 200, run
    return None


def _add_version(kfp: KfpBackend, pipeline_id: str, name: str, doc: Obj) -> Obj:
    version = {
        "pipeline_id": pipeline_id,
        "pipeline_version_id": uuid.uuid4().hex,
        "display_name": name,
        "created_at": now(),
        "pipeline_spec": doc,
    }
    kfp.versions.append(version)
    return version


@contextmanager
def kfp_backend(
    world: World,
    secrets: dict[str, dict[str, str]],
    config_maps: dict[str, dict[str, str]] | None = None,
) -> Iterator[KfpBackend]:
    """The stand-in as Service ``ml-pipeline.kubeflow:8888`` of ``world`` (the standalone
    install's API, cluster-facts.md); ``url`` is that Service's address, as a port-forward
    gives it. Runs still going when it stops are terminated, with their pods."""
    kfp = KfpBackend(world, secrets, config_maps or {})
    for path in (*SCRATCH, ARTIFACTS):  # the pods' mount points, removed with the world's
        ensure_mount_point(path, True)
    service, pod_ip = world.dns.add_service(NAMESPACE, "ml-pipeline"), world.dns.pod_ip()
    server = ThreadingHTTPServer((pod_ip, 8888), _handler(kfp))
    world.proxy.add(ServicePort(service, 8888, 8888, [pod_ip]))
    kfp.url = f"http://{service}:8888"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield kfp
    finally:
        server.shutdown()
        server.server_close()
        for run_id in list(kfp.drivers):
            kfp.terminate(run_id)
        for worker in kfp.workers:
            worker.join(30)
