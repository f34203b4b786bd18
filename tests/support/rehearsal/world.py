"""The rendered chart as a running namespace: Secrets, Services, pods, hooks, readiness.

:class:`World` takes the documents ``helm template`` renders (the same values files and flags
as ``make deploy``) and runs them with :mod:`.pods`:

* **Secrets** as ``scripts/deploy.sh`` creates them: random values, the fixed usernames made
  unique per rehearsal (so two runs on one PostgreSQL never share a role), see
  :func:`generated_secrets`;
* **our image's workloads** (MLflow, Feast with its init container, the payload sink, the
  hook Jobs, later the model servers and CronJobs): each container's exact command, args and
  environment in a pod of its own;
* **upstream images that cannot run here**, replaced by the real thing this machine has,
  each marked EMULATED where it is done: PostgreSQL is this machine's server (the image's
  first-start initialization, role and database from ``POSTGRES_*``, is done here); Redis is
  this machine's ``redis-server`` binary started with the rendered args (plus ``--bind`` of
  the pod's address, the network emulation); MinIO is moto's S3 server on the pod's address;
  the bucket Job's ``mc mb`` is done with boto3 from the Job's own ``MC_HOST_target``;
* **Services**: every rendered Service gets an address and forwards to the pods its selector
  picks (named ``targetPort``\\ s resolved against the pods' container ports);
* **readiness**: a pod counts as started once its ``readinessProbe`` passes (``httpGet`` and
  ``tcpSocket`` as the kubelet runs them; the upstream images' ``exec`` probes are replaced by
  a TCP connect), a Job once its container exits 0;
* **the Kubernetes API** (EMULATED, :mod:`.kube_api`), once :meth:`World.start_kube_api` is
  called: from then on every pod gets the ``kubernetes`` Service env and, if it automounts, its
  ServiceAccount token. The rollout controllers (component ``rollout``) call that API, so
  :meth:`World.apply` leaves them out and :meth:`World.start_rollout` starts them after it.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from tests.support.chart import container_env, expand, helm, load_all, template_args
from tests.support.rehearsal.image import build_image_root
from tests.support.rehearsal.kube_api import ApiServer, KubeApi, OnWrite, api_server
from tests.support.rehearsal.pods import (
    ClusterDns,
    KubeProxy,
    Pod,
    ServicePort,
    Volume,
    image_env,
    kube_proxy,
    remove_mount_points,
)

ROOT = Path(__file__).resolve().parents[3]
Obj = dict[str, Any]


def generated_secrets(run: str) -> dict[str, dict[str, str]]:
    """The Secrets ``scripts/deploy.sh`` creates (``ensure_secret``): random values for every
    key it does not fix; its fixed usernames get the rehearsal's suffix."""
    rnd = secrets.token_hex
    return {
        "mlplatform-postgresql": {"username": f"mlflow_{run}", "password": rnd(32)},
        "mlplatform-stores": {"username": f"mlplatform_{run}", "password": rnd(32)},
        "mlplatform-s3": {"access-key-id": rnd(32), "secret-access-key": rnd(32)},
        "mlplatform-redis": {"password": rnd(32)},
    }


@dataclass
class Workload:
    """One Deployment, StatefulSet or Job and the pods started for it."""

    obj: Obj
    pods: list[Pod] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def template(self) -> Obj:
        spec: Obj = self.obj["spec"]["template"]
        return spec


@dataclass
class World:
    """One release namespace of the rendered chart, running on this machine."""

    tmp: Path
    namespace: str
    secrets: dict[str, dict[str, str]]
    dns: ClusterDns
    proxy: KubeProxy
    postgres_admin: str  # this machine's PostgreSQL (an administrative URL)
    image_root: Path = field(init=False)
    workloads: dict[str, Workload] = field(default_factory=dict)
    docs: list[Obj] = field(default_factory=list)
    _moto: list[Any] = field(default_factory=list)
    _service_ports: list[tuple[dict[str, str], ServicePort]] = field(default_factory=list)
    _roles: list[str] = field(default_factory=list)
    _databases: list[str] = field(default_factory=list)
    kube: ApiServer | None = None  # the Kubernetes API stand-in, once started
    _stack: ExitStack = field(default_factory=ExitStack)

    def __post_init__(self) -> None:
        self.image_root = build_image_root(ROOT, self.tmp / "image" / "app")
        self.image_root.chmod(0o555)

    # -- objects ----------------------------------------------------------------------------
    def of_kind(self, kind: str) -> list[Obj]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> Obj:
        (obj,) = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        return obj

    def apply(self, docs: list[Obj], progress: Any = print) -> None:
        """Services first, then workloads in dependency order, hooks after their install.

        Not the rollout controllers: they need the Kubernetes API, which this does not start
        (:meth:`start_kube_api`, then :meth:`start_rollout`)."""
        self.docs = docs
        self._wire_services()
        order = [("StatefulSet", "postgresql"), ("Deployment", "redis"), ("StatefulSet", "minio")]
        hooks = [d for d in docs if d["kind"] == "Job" and _hook(d)]
        for kind, component in order:
            for obj in self.of_kind(kind):
                if _component(obj) == component:
                    self._start_upstream(component, obj, progress)
        for job in hooks:
            self.run_job(job, progress)
        for kind in ("Deployment", "StatefulSet"):
            for obj in self.of_kind(kind):
                if _component(obj) not in {*(c for _, c in order), ROLLOUT}:
                    self.start_workload(obj, progress)

    def start_kube_api(self, on_write: OnWrite | None = None) -> ApiServer:
        """The EMULATED Kubernetes API serving the release's InferenceServices (each seeded one
        goes through ``on_write``, the KServe controller's turn) as Service ``kubernetes`` of
        ``default``; pods built from now on get its env and their token. Stopped by :meth:`stop`."""
        if self.kube is not None:
            raise RuntimeError("the Kubernetes API stand-in is already running")
        api = KubeApi(self.docs, self.namespace, on_write)
        self.kube = self._stack.enter_context(
            api_server(api, self.dns, self.tmp / "kube-api", self.proxy)
        )
        return self.kube

    def rollout_controllers(self) -> list[Obj]:
        """The Deployments whose pods are a rollout controller (``mlplatform rollout``)."""
        return [d for d in self.of_kind("Deployment") if _component(d) == ROLLOUT]

    def start_rollout(self, progress: Any = print) -> list[Workload]:
        """Every rollout controller, which :meth:`apply` left out: only once the Kubernetes API
        runs, as on the cluster their first call (``load_config``) needs its env and token."""
        if self.kube is None:
            raise RuntimeError("start_kube_api() first: the rollout controllers call the API")
        return [self.start_workload(obj, progress) for obj in self.rollout_controllers()]

    # -- pods --------------------------------------------------------------------------------
    def pod_for(self, owner: str, template: Obj, container: Obj, index: int = 0) -> Pod:
        """A pod of ``owner`` running ``container`` of the pod ``template``: env, volumes; with
        the Kubernetes API running, its ``kubernetes`` Service env first (the container's own
        env overrides it, as the kubelet orders them) and the ServiceAccount token volume."""
        name = f"{owner}-{index}-{uuid.uuid4().hex[:5]}"
        env = {
            **image_env(ROOT / "images" / "Dockerfile"),
            **(self.kube.pod_env() if self.kube else {}),
            **container_env(container, self.secrets),
        }
        volumes = self._volumes(name, template, container)
        token_dir = self.tmp / "pods" / name / "serviceaccount"
        if self.kube and (token := self.kube.credentials(template, token_dir)):
            volumes.append(token)
        return Pod(name, self.namespace, _argv(container, env), env, volumes, self.image_root)

    def _volumes(self, pod: str, template: Obj, container: Obj) -> list[Volume]:
        defined = {v["name"]: v for v in template["spec"].get("volumes", [])}
        out = []
        for mount in container.get("volumeMounts", []):
            volume = defined[mount["name"]]
            source = self._volume_source(pod, volume)
            if "subPath" in mount:
                source = source / mount["subPath"]
            out.append(Volume(mount["mountPath"], source, bool(mount.get("readOnly"))))
        return out

    def _volume_source(self, pod: str, volume: Obj) -> Path:
        if "emptyDir" in volume:
            path = self.tmp / "pods" / pod / "volumes" / volume["name"]
        elif "persistentVolumeClaim" in volume:
            path = self.tmp / "claims" / volume["persistentVolumeClaim"]["claimName"]
        elif "configMap" in volume:
            path = self.tmp / "pods" / pod / "configmaps" / volume["name"]
            path.mkdir(parents=True, exist_ok=True)
            data = self.get("ConfigMap", volume["configMap"]["name"]).get("data", {})
            items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                (path / item["path"]).write_text(data[item["key"]])
            return path
        else:
            raise NotImplementedError(f"volume not emulated: {volume}")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start_workload(self, obj: Obj, progress: Any = print) -> Workload:
        """Every replica of a Deployment/StatefulSet: init containers to completion, then the
        (one) main container, until its readiness probe passes."""
        work = Workload(obj)
        self.workloads[work.name] = work
        for i in range(int(obj["spec"].get("replicas", 1))):
            for init in work.template["spec"].get("initContainers", []):
                self._run_to_completion(self.pod_for(f"{work.name}-init", work.template, init, i))
            (container,) = work.template["spec"]["containers"]
            pod = self.pod_for(work.name, work.template, container, i)
            pod.start(self.dns, self.tmp / "run" / pod.name, self.log(pod))
            work.pods.append(pod)
            self._wait_ready(pod, container)
            self._ready(work.template, pod)
        progress(f"  {obj['kind'].lower()}/{work.name}: {len(work.pods)} pod(s) ready")
        return work

    def restart_pod(self, name: str, index: int = 0, grace: float = 30) -> Pod:
        """``kubectl delete pod`` on pod ``index`` of workload ``name``: SIGTERM, SIGKILL after
        the grace period (``terminationGracePeriodSeconds``' default, 30 s), then the pod its
        Deployment starts in its place, once ready (and in its Services' endpoints)."""
        work = self.workloads[name]
        old = work.pods[index]
        old.stop(grace)
        for _, port in self._service_ports:
            if old.ip in port.backends:
                port.backends.remove(old.ip)
        (container,) = work.template["spec"]["containers"]
        pod = self.pod_for(work.name, work.template, container, index)
        pod.start(self.dns, self.tmp / "run" / pod.name, self.log(pod))
        work.pods[index] = pod
        self._wait_ready(pod, container)
        self._ready(work.template, pod)
        return pod

    def run_job(self, job: Obj, progress: Any = print) -> str:
        """A Job's pod to completion (its log), or an emulation for an upstream image."""
        template = job["spec"]["template"]
        (container,) = template["spec"]["containers"]
        name = job["metadata"]["name"]
        if container["image"].startswith("quay.io/minio/mc"):
            self._make_bucket(container)  # EMULATED
            progress(f"  job/{name}: bucket created (emulated mc)")
            return ""
        pod = self.pod_for(name, template, container)
        out = self._run_to_completion(pod)
        progress(f"  job/{name}: completed")
        return out

    def _run_to_completion(self, pod: Pod, timeout: float = 300) -> str:
        proc = pod.start(self.dns, self.tmp / "run" / pod.name, self.log(pod))
        code = proc.wait(timeout)
        text = self.log(pod).read_text(errors="replace")
        if code != 0:
            raise RuntimeError(f"pod {pod.name} exited {code}:\n{text[-3000:]}")
        return text

    def log(self, pod: Pod) -> Path:
        (self.tmp / "logs").mkdir(exist_ok=True)
        return self.tmp / "logs" / f"{pod.name}.log"

    def _wait_ready(self, pod: Pod, container: Obj, timeout: float = 180) -> None:
        probe = container.get("readinessProbe") or {}
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert pod.process is not None
            if pod.process.poll() is not None:
                raise RuntimeError(f"{pod.name} exited:\n{self.log(pod).read_text()[-3000:]}")
            if _probe(pod.ip, probe, ports):
                return
            time.sleep(0.3)
        raise RuntimeError(f"{pod.name} not ready:\n{self.log(pod).read_text()[-3000:]}")

    # -- Services --------------------------------------------------------------------------
    def _wire_services(self) -> None:
        """Every Service's address and ports now, with no backend yet: a pod joins the ports
        of the Services whose selector picks it once it is ready (:meth:`_ready`)."""
        templates = [d["spec"]["template"] for d in self.docs if d["kind"] in WORKLOAD_KINDS]
        for svc in self.of_kind("Service"):
            ip = self.dns.add_service(self.namespace, svc["metadata"]["name"])
            selector = svc["spec"].get("selector", {})
            picked = [t for t in templates if _selects(selector, t)]
            for port in svc["spec"]["ports"]:
                target = _target_port(port, picked)
                self._service_ports.append(
                    (selector, self.proxy.add(ServicePort(ip, port["port"], target, [])))
                )

    def _ready(self, template: Obj, pod: Pod) -> None:
        for selector, port in self._service_ports:
            if _selects(selector, template):
                port.backends.append(pod.ip)

    # -- upstream images (EMULATED) -----------------------------------------------------------
    def _start_upstream(self, component: str, obj: Obj, progress: Any) -> None:
        work = Workload(obj)
        self.workloads[work.name] = work
        (container,) = work.template["spec"]["containers"]
        env = container_env(container, self.secrets)
        pod = Pod(f"{work.name}-0", self.namespace, [], env, [], self.image_root)
        if component == "postgresql":
            pod.ip = "127.0.0.1"  # this machine's server is the pod
            self._init_postgres(env)
        elif component == "redis":
            pod.ip = self.dns.pod_ip()
            args = [expand(a, env) for a in container.get("args", [])]
            cmd = [shutil.which("redis-server") or "redis-server", *args, "--bind", pod.ip]
            with self.log(pod).open("ab") as out:
                pod.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
            _wait_tcp(pod.ip, 6379)
        elif component == "minio":
            from moto.server import ThreadedMotoServer

            pod.ip = self.dns.pod_ip()
            server = ThreadedMotoServer(ip_address=pod.ip, port=9000, verbose=False)
            server.start()
            self._moto.append(server)
            _wait_tcp(pod.ip, 9000)
        work.pods.append(pod)
        self._ready(work.template, pod)
        progress(
            f"  {obj['kind'].lower()}/{work.name}: this machine's {component} (emulated image)"
        )

    def _init_postgres(self, env: dict[str, str]) -> None:
        """What the postgres image does on first start (docker-entrypoint.sh): the superuser
        ``POSTGRES_USER`` with ``POSTGRES_PASSWORD`` and its database ``POSTGRES_DB``."""
        import psycopg
        from psycopg import sql

        user, db = env["POSTGRES_USER"], env["POSTGRES_DB"]
        with psycopg.connect(self.postgres_admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} SUPERUSER LOGIN PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(env["POSTGRES_PASSWORD"])
                )
            )
            self._roles.append(user)
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(db), sql.Identifier(user)
                )
            )
            self._databases.append(db)

    def _make_bucket(self, container: Obj) -> None:
        env = container_env(container, self.secrets)
        host = urlsplit(env["MC_HOST_target"])
        bucket = container["command"][-1].split("/", 1)[1]
        ip = self.dns.names(self.namespace)[host.hostname or ""]
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://{ip}:{host.port}",
            aws_access_key_id=host.username,
            aws_secret_access_key=host.password,
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket=bucket)

    def cleanup_postgres(self, also_databases: list[str], also_roles: list[str]) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.postgres_admin, autocommit=True) as conn:
            for db in [*self._databases, *also_databases]:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
                )
            for role in [*also_roles, *self._roles]:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))

    def stop(self) -> None:
        for work in self.workloads.values():
            for pod in work.pods:
                pod.stop()
        for server in self._moto:
            server.stop()
        self._stack.close()  # the Kubernetes API stand-in, after the pods that call it
        self.kube = None
        remove_mount_points()


WORKLOAD_KINDS = ("Deployment", "StatefulSet")
#: The component label of the rollout controllers' pods: started after the Kubernetes API.
ROLLOUT = "rollout"


def _target_port(port: Obj, templates: list[Obj]) -> int:
    """A Service port's ``targetPort``; a name is looked up in the selected pods' ports."""
    target = port.get("targetPort", port["port"])
    if isinstance(target, int):
        return target
    for t in templates:
        for c in t["spec"]["containers"]:
            for p in c.get("ports", []):
                if p.get("name") == target:
                    return int(p["containerPort"])
    raise RuntimeError(f"no container port named {target!r} behind the Service")


def _hook(obj: Obj) -> bool:
    return "helm.sh/hook" in obj["metadata"].get("annotations", {})


def _component(obj: Obj) -> str:
    labels = obj["spec"]["template"]["metadata"].get("labels", {})
    return str(labels.get("app.kubernetes.io/component", ""))


def _selects(selector: dict[str, str], template: Obj) -> bool:
    labels = template["metadata"].get("labels", {})
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _argv(container: Obj, env: dict[str, str]) -> list[str]:
    argv = [*container.get("command", []), *container.get("args", [])]
    return [expand(a, env) for a in argv]


def _probe(ip: str, probe: Obj, ports: dict[str | None, int]) -> bool:
    if "httpGet" in probe:
        get = probe["httpGet"]
        port = ports.get(get["port"], get["port"])
        try:
            r = httpx.get(f"http://{ip}:{port}{get.get('path', '/')}", timeout=2)
        except httpx.HTTPError:
            return False
        return 200 <= r.status_code < 400
    port = (probe.get("tcpSocket") or {}).get("port") or next(iter(ports.values()), None)
    return port is None or _tcp(ip, int(ports.get(port, port)))  # type: ignore[arg-type]


def _tcp(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=1):
            return True
    except OSError:
        return False


def _wait_tcp(ip: str, port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _tcp(ip, port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{ip}:{port} did not open")


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


@contextmanager
def deployed_platform(
    tmp: Path, namespace: str, postgres_url: str, other_services: tuple[tuple[str, str], ...] = ()
) -> Iterator[tuple[World, str]]:
    """`make deploy SERVING=false` as processes: the chart rendered with values-kind.yaml
    (databases named after a fresh run id), Secrets as deploy.sh makes them, every workload
    started; ``other_services`` (namespace, name) are names the cluster has besides the
    release's. Yields the world and its run id; stops it and drops what it made afterwards."""
    from tests.support.services import with_database

    run = new_run_id()
    sets = ("serving.enabled=false", f"postgresql.database=mlflow_{run}")
    docs = load_all(
        helm(*template_args("values-kind.yaml", *sets, f"stores.database=mlplatform_{run}")).stdout
    )
    admin = with_database(postgres_url, "postgres", "postgresql")
    with kube_proxy() as proxy:
        w = World(tmp, namespace, generated_secrets(run), ClusterDns(), proxy, admin)
        for ns, name in other_services:
            w.dns.add_service(ns, name)
        try:
            w.apply(docs)
            yield w, run
        finally:
            w.stop()
            stores = w.secrets["mlplatform-stores"]["username"]
            w.cleanup_postgres([f"mlplatform_{run}"], [stores])
