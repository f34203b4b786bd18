"""EMULATED KServe v0.20 controller, Knative deployment mode: InferenceServices as pods.

:class:`KServeController` takes a rendered InferenceService and runs it the way the KServe
controller, Knative Serving and the pods' kubelet would, on top of a :class:`World`:

* **Containers.** Each component (predictor, transformer, explainer) runs its one container
  exactly as rendered (command, args, env, volumes: built by :meth:`World.pod_for`), plus the
  arguments KServe appends. Transformer and explainer get ``--model_name <isvc>`` and
  ``--predictor_host <isvc>-predictor.<ns>`` unless their args already hold a flag with that
  prefix (``utils.IncludesArg``); the transformer ``--http_port 8080`` likewise, the explainer
  always (kserve v0.20.0 ``pkg/apis/serving/v1beta1/transformer_custom.go`` and
  ``explainer_custom.go``, ``GetContainer``). See :func:`injected_args`.
* **Pod labels**: the isvc's labels, the component's, then ``serving.kserve.io/
  inferenceservice`` and ``component`` (``pkg/controller/v1beta1/inferenceservice/components/
  predictor.go``, ``transformer.go``, ``explainer.go``). The logger agent reads them.
* **Revisions.** A change of a component's template (all of its spec except
  ``canaryTrafficPercent``, which only goes to the Knative Route) makes a new revision named
  ``<isvc>-<component>-<5-digit generation>``, as Knative names a Configuration's revisions.
  A revision counts as ready once every pod passes its rendered ``readinessProbe``.
* **Traffic** as ``ksvc_reconciler.go`` (``pkg/controller/v1beta1/inferenceservice/reconcilers/
  knative/``) writes it: with ``canaryTrafficPercent`` p and a rolled-out revision, p % to the
  latest ready revision and 100 - p % to ``latestRolledoutRevision`` (tag ``prev``); else 100 %
  to the latest. Revisions no traffic target names are no longer routable and Knative scales
  them to zero: their pods are stopped.
* **Status** as ``PropagateStatus`` in ``pkg/apis/serving/v1beta1/inference_service_status.go``
  fills it from the Knative service status: ``latestCreatedRevision``, ``latestReadyRevision``,
  ``latestRolledoutRevision``/``previousRolledoutRevision`` (moved when the latest ready
  revision gets 100 %, moved back on a rollback), ``traffic``, ``url``/``address``.
* **Ingress and logger**: :mod:`.ingress` and :mod:`.logger_agent`.

Not emulated: autoscaling (``minReplicas`` pods per revision, no more), storage initializer,
ServingRuntimes, the webhook's validation, external URLs (only the cluster-local ones).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from tests.support.rehearsal.ingress import Backend, Ingress, TopLevel, local_hosts
from tests.support.rehearsal.logger_agent import LoggerAgent
from tests.support.rehearsal.pods import Pod
from tests.support.rehearsal.world import World

Obj = dict[str, Any]
COMPONENTS = ("predictor", "transformer", "explainer")
DEFAULT_PORT = "8080"  # constants.InferenceServiceDefaultHttpPort
READY_CONDITION = {c: f"{c.capitalize()}Ready" for c in COMPONENTS}


def includes_arg(args: list[str], flag: str) -> bool:
    """``utils.IncludesArg`` (pkg/utils/collections.go): an arg equal to or starting with flag."""
    return any(a == flag or a.startswith(flag) for a in args)


def injected_args(component: str, isvc: str, namespace: str, args: list[str]) -> list[str]:
    """The container args after KServe's ``GetContainer`` for a custom component."""
    out = list(args)
    if component == "predictor":
        return out
    if not includes_arg(out, "--model_name"):
        out += ["--model_name", isvc]
    if not includes_arg(out, "--predictor_host"):
        out += ["--predictor_host", f"{isvc}-predictor.{namespace}"]
    if component == "explainer" or not includes_arg(out, "--http_port"):
        out += ["--http_port", DEFAULT_PORT]  # the explainer appends it unconditionally
    return out


@dataclass
class Revision:
    """One Knative revision of a component: its pods, labels and (with a logger) agent."""

    name: str
    template: Obj  # the pod template the pods were built from
    key: str  # the component's spec without canaryTrafficPercent
    pods: list[Pod] = field(default_factory=list)
    ready: bool = False
    backend: Backend | None = None

    def pods_running(self) -> bool:
        return any(p.process is not None and p.process.poll() is None for p in self.pods)

    def stop(self) -> None:
        if self.backend is not None:
            self.backend.addresses.clear()
        for pod in self.pods:
            pod.stop()


@dataclass
class Served:
    """One InferenceService: the object as applied, its revisions per component."""

    obj: Obj
    revisions: dict[str, list[Revision]] = field(default_factory=dict)


class KServeController:
    """Reconciles InferenceServices into pods, revisions, routes and status."""

    def __init__(self, world: World, ingress: Ingress) -> None:
        self.world, self.ingress = world, ingress
        self.served: dict[str, Served] = {}

    # -- the API a Kubernetes API stand-in calls ---------------------------------------------
    def apply(self, isvc: Obj) -> Obj:
        """Reconcile ``isvc`` (create or update); the object with its status."""
        obj = copy.deepcopy(isvc)
        meta = obj["metadata"]
        meta.setdefault("namespace", self.world.namespace)
        mode = meta.get("annotations", {}).get("serving.kserve.io/deploymentMode", "Knative")
        if mode not in ("Knative", "Serverless"):
            raise NotImplementedError(f"deployment mode {mode!r} is not emulated")
        served = self.served.setdefault(meta["name"], Served(obj))
        old_status = served.obj.get("status") or {}
        generation = int(served.obj["metadata"].get("generation", 0))
        changed = served.obj.get("spec") != obj["spec"] or generation == 0
        meta["generation"] = generation + 1 if changed else generation
        served.obj = obj
        self._register_names(obj)
        started = [self._revise(served, c) for c in COMPONENTS if c in obj["spec"]]
        for revision in [r for r in started if r is not None]:
            self._wait(revision)
        obj["status"] = self._route_and_status(served, old_status)
        return copy.deepcopy(obj)

    def get(self, name: str) -> Obj:
        return copy.deepcopy(self.served[name].obj)

    def revisions(self, name: str, component: str = "predictor") -> list[Revision]:
        return list(self.served[name].revisions.get(component, []))

    def restart(self, name: str, component: str = "predictor") -> list[Pod]:
        """Every pod of the component's latest revision replaced by a new one from the same
        revision template (a restart, a drain, a scale-up: the new pod reads its args again);
        the new pods once ready, in the revision's backend instead of the old ones."""
        revision = self.served[name].revisions[component][-1]
        (container,) = revision.template["spec"]["containers"]
        port = int(container["ports"][0]["containerPort"])
        for i, old in enumerate(list(revision.pods)):
            old.stop()
            pod = self.world.pod_for(f"{revision.name}-deployment", revision.template, container, i)
            pod.start(self.world.dns, self.world.tmp / "run" / pod.name, self.world.log(pod))
            self.world._wait_ready(pod, container)
            revision.pods[i] = pod
        if revision.backend is not None:  # in place: the routes hold this Backend
            revision.backend.addresses[:] = [f"{p.ip}:{port}" for p in revision.pods]
        return list(revision.pods)

    def delete(self, name: str) -> None:
        served = self.served.pop(name)
        ns = served.obj["metadata"]["namespace"]
        for component, revisions in served.revisions.items():
            for revision in revisions:
                revision.stop()
            self.ingress.forget(local_hosts(f"{name}-{component}", ns))
            self.world.dns.services.pop((ns, f"{name}-{component}"), None)
        self.ingress.forget(local_hosts(name, ns))
        self.world.dns.services.pop((ns, name), None)

    def stop(self) -> None:
        for served in self.served.values():  # SIGTERM to all first: they shut down together
            for revision in [r for rs in served.revisions.values() for r in rs]:
                for pod in revision.pods:
                    if pod.process is not None and pod.process.poll() is None:
                        pod.process.terminate()
        for name in list(self.served):
            self.delete(name)

    # -- revisions and pods ------------------------------------------------------------------
    def _register_names(self, obj: Obj) -> None:
        """Before any pod starts (its /etc/hosts is written then): every name of the isvc."""
        name, ns = obj["metadata"]["name"], obj["metadata"]["namespace"]
        self.ingress.register(ns, name)
        for component in COMPONENTS:
            if component in obj["spec"]:
                self.ingress.register(ns, f"{name}-{component}")

    def _revise(self, served: Served, component: str) -> Revision | None:
        """A new revision of ``component`` when its template changed, its pods started."""
        obj = served.obj
        spec = obj["spec"][component]
        key = json.dumps(
            [
                {k: v for k, v in spec.items() if k != "canaryTrafficPercent"},
                obj["metadata"].get("labels"),
                obj["metadata"].get("annotations"),
            ],
            sort_keys=True,
        )
        revisions = served.revisions.setdefault(component, [])
        if revisions and revisions[-1].key == key:
            return None
        name, ns = obj["metadata"]["name"], obj["metadata"]["namespace"]
        revision_name = f"{name}-{component}-{len(revisions) + 1:05d}"
        (container,) = spec["containers"]
        container = {
            **container,
            "args": injected_args(component, name, ns, container.get("args", [])),
        }
        labels = {
            **(obj["metadata"].get("labels") or {}),
            **(spec.get("labels") or {}),
            "serving.kserve.io/inferenceservice": name,
            "component": component,
            "serving.knative.dev/revision": revision_name,
        }
        pod_spec = {k: v for k, v in spec.items() if k not in ("labels", "annotations")}
        template = {"metadata": {"labels": labels}, "spec": {**pod_spec, "containers": [container]}}
        revision = Revision(revision_name, template, key)
        for i in range(max(int(spec.get("minReplicas", 1)), 1)):
            pod = self.world.pod_for(f"{revision_name}-deployment", template, container, i)
            pod.start(self.world.dns, self.world.tmp / "run" / pod.name, self.world.log(pod))
            revision.pods.append(pod)
        revisions.append(revision)
        return revision

    def _wait(self, revision: Revision) -> None:
        """The kubelet's readiness probe on every pod; a pod that exits fails the revision."""
        (container,) = revision.template["spec"]["containers"]
        try:
            for pod in revision.pods:
                self.world._wait_ready(pod, container)
        except RuntimeError as exc:
            print(f"revision {revision.name} failed: {exc}")
            revision.stop()
            return
        revision.ready = True
        port = int(container["ports"][0]["containerPort"])
        revision.backend = Backend(revision.name, [f"{p.ip}:{port}" for p in revision.pods])
        logger = revision.template["spec"].get("logger")
        if logger:  # agent_injector.go: one agent per pod; the pods of a revision are alike
            pod = revision.pods[0]
            revision.backend.agent = LoggerAgent.for_pod(
                logger,
                pod.name,
                pod.namespace,
                revision.template["metadata"]["labels"],
                lambda host: self.world.dns.names(pod.namespace)[host],
            )

    # -- routes and status -------------------------------------------------------------------
    def _route_and_status(self, served: Served, old: Obj) -> Obj:
        obj = served.obj
        name, ns = obj["metadata"]["name"], obj["metadata"]["namespace"]
        components: dict[str, Obj] = {}
        conditions = []
        for component, revisions in served.revisions.items():
            spec = obj["spec"].get(component)
            if spec is None:
                continue
            before = (old.get("components") or {}).get(component, {})
            url = f"http://{name}-{component}.{ns}.svc.cluster.local"
            ksvc = knative_status(revisions, spec.get("canaryTrafficPercent"), before, url)
            components[component] = propagate(before, ksvc)
            ready = revisions[-1].ready
            conditions.append({"type": READY_CONDITION[component], "status": str(ready)})
            by_name = {r.name: r for r in revisions}
            targets = [(by_name[t["revisionName"]], int(t["percent"])) for t in ksvc["traffic"]]
            routed = {r.name for r, _ in targets}
            backends = [(r.backend, p) for r, p in targets if r.backend is not None]
            self.ingress.set_route(local_hosts(f"{name}-{component}", ns), backends)
            for revision in revisions:  # after the routes moved (see ingress.py)
                if revision.name not in routed and revision.pods_running():
                    if revision.backend is not None:
                        self.ingress.wait_idle(revision.backend)
                    revision.stop()
        self._top_level(obj)
        all_ready = all(c["status"] == "True" for c in conditions)
        conditions += [
            {"type": "IngressReady", "status": str(all_ready)},
            {"type": "Ready", "status": str(all_ready)},
        ]
        return {
            "observedGeneration": obj["metadata"]["generation"],
            "url": f"http://{name}.{ns}.svc.cluster.local",
            "address": {"url": f"http://{name}.{ns}.svc.cluster.local"},
            "components": components,
            "conditions": conditions,
        }

    def _top_level(self, obj: Obj) -> None:
        name, ns = obj["metadata"]["name"], obj["metadata"]["namespace"]
        spec = obj["spec"]
        default = "transformer" if "transformer" in spec else "predictor"
        explain = f"{name}-explainer.{ns}.svc.cluster.local" if "explainer" in spec else None
        top = TopLevel(name, ns, f"{name}-{default}.{ns}.svc.cluster.local", explain)
        self.ingress.set_top_level(local_hosts(name, ns), top)


def knative_status(revisions: list[Revision], canary: int | None, before: Obj, url: str) -> Obj:
    """The Knative Service's status: the spec traffic of ``ksvc_reconciler.go`` (from the
    component's previous ``latestRolledoutRevision``), ``latestRevision: true`` resolved to
    the latest ready revision, as Knative's Route does."""
    ready = [r.name for r in revisions if r.ready]
    latest_ready = ready[-1] if ready else ""
    rolled_out = before.get("latestRolledoutRevision", "")
    latest = {"revisionName": latest_ready, "latestRevision": True, "percent": 100}
    traffic = [latest]
    if canary is not None and rolled_out:
        latest["percent"] = canary
        if canary < 100:
            prev = {"revisionName": rolled_out, "latestRevision": False, "tag": "prev"}
            traffic.append({**prev, "percent": 100 - canary})
    return {
        "latestCreatedRevisionName": revisions[-1].name,
        "latestReadyRevisionName": latest_ready,
        "traffic": [t for t in traffic if t["revisionName"]],
        "ready": revisions[-1].ready,
        "url": url,
    }


def propagate(before: Obj, ksvc: Obj) -> Obj:
    """``PropagateStatus`` (inference_service_status.go) for one component."""
    out = copy.deepcopy(before)
    out["latestCreatedRevision"] = ksvc["latestCreatedRevisionName"]
    latest_ready = ksvc["latestReadyRevisionName"]
    per_revision: dict[str, int] = {}
    for t in ksvc["traffic"]:
        per_revision[t["revisionName"]] = per_revision.get(t["revisionName"], 0) + t["percent"]
    for t in ksvc["traffic"]:
        if t["revisionName"] != latest_ready or not t.get("latestRevision"):
            continue
        if out.get("latestRolledoutRevision") != latest_ready:
            if t["percent"] == 100:  # the last revision that was fully rolled out
                out["previousRolledoutRevision"] = out.get("latestRolledoutRevision", "")
                out["latestRolledoutRevision"] = latest_ready
        elif (
            latest_ready == ksvc["latestCreatedRevisionName"]
            and t["percent"] < 100
            and per_revision.get(t["revisionName"]) == 100  # a split over this one revision
            and out.get("previousRolledoutRevision")
        ):  # rolled out with 100 %, then rolled back: back to the previous one
            out["latestRolledoutRevision"] = out["previousRolledoutRevision"]
    out["latestReadyRevision"] = latest_ready
    if ksvc["ready"]:
        out["url"] = ksvc["url"]
        out["address"] = {"url": ksvc["url"]}
    out["traffic"] = ksvc["traffic"]
    return {k: v for k, v in out.items() if v != ""}  # omitempty
