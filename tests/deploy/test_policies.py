"""Security, resource and wiring rules over everything the chart renders, for every values file.

Each rule states what a reviewer would check by hand: restricted pod security, requests and
limits, probes, pinned images, credentials only through Secret references, least-privilege RBAC,
NetworkPolicies that cover every Service, and the contracts of the commands the servers run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import yaml
from k8s_render import (
    CHART,
    NAMESPACE,
    RELEASE,
    VALUES_FILES,
    all_containers,
    containers,
    name_of,
    pod_labels,
    pod_specs,
    render,
    selects,
)

from mlplatform.image import IMAGE
from mlplatform.serving.payloads import EXPLAINER_HEADER
from mlplatform.serving.traffic import ENDPOINT_LABEL, endpoint_label

MODELS = ("credit-risk", "house-price")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|CREDENTIAL", re.IGNORECASE)
QUANTITY = re.compile(r"^([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
UNITS = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
UNITS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}

every_values_file = pytest.mark.parametrize("values_file", VALUES_FILES)


def quantity(value: str | int | float) -> float:
    m = QUANTITY.match(str(value))
    assert m, f"not a quantity: {value!r}"
    return float(m.group(1)) * UNITS[m.group(2)]


def values(values_file: str) -> dict:
    base = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    overlay = yaml.safe_load((CHART / values_file).read_text(encoding="utf-8"))

    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return out

    return merge(base, overlay)


def ours(c: dict) -> bool:
    return c["image"] == IMAGE


# ---------------------------------------------------------------- pod security


@every_values_file
def test_every_pod_runs_as_non_root_with_runtime_default_seccomp(values_file: str) -> None:
    pods = [(w, p) for o in render(values_file) for w, p in pod_specs(o)]
    assert len(pods) > 15
    for where, pod in pods:
        psc = pod.get("securityContext", {})
        assert psc.get("runAsNonRoot") is True, where
        assert psc.get("runAsUser", 0) > 0, where
        assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(flag), f"{where}: {flag}"
        for vol in pod.get("volumes", []):
            assert "hostPath" not in vol, f"{where}: hostPath volume {vol['name']}"


@every_values_file
def test_every_container_is_locked_down(values_file: str) -> None:
    for where, _, c in all_containers(render(values_file)):
        sc = c.get("securityContext", {})
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert sc.get("runAsNonRoot") is True, where
        assert not sc.get("privileged"), where
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
        assert not sc.get("capabilities", {}).get("add"), where
        assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where


@every_values_file
def test_read_only_root_filesystems_get_a_writable_tmp(values_file: str) -> None:
    for where, pod, c in all_containers(render(values_file)):
        if not ours(c):
            continue
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        assert "/tmp" in mounts, where
        (vol,) = [v for v in pod["volumes"] if v["name"] == mounts["/tmp"]]
        assert "sizeLimit" in vol["emptyDir"], where


# ---------------------------------------------------------------- resources and probes


@every_values_file
def test_every_container_has_requests_and_limits(values_file: str) -> None:
    for where, _, c in all_containers(render(values_file)):
        res = c.get("resources", {})
        for resource in ("cpu", "memory"):
            request = res.get("requests", {}).get(resource)
            limit = res.get("limits", {}).get(resource)
            assert request is not None and limit is not None, f"{where}: {resource}"
            assert quantity(request) <= quantity(limit), f"{where}: {resource} request > limit"


@every_values_file
def test_every_serving_container_has_readiness_and_liveness_probes(values_file: str) -> None:
    """A container that exposes a port serves traffic and must say when it can; the ones
    without ports (jobs, the rollout controller) are judged by their exit code instead."""
    served = set()
    for where, _, c in all_containers(render(values_file)):
        if where.split(":")[1].startswith("initContainer") or not c.get("ports"):
            continue
        served.add(where.split(":")[0])
        assert "readinessProbe" in c and "livenessProbe" in c, where
        for probe in ("readinessProbe", "livenessProbe"):
            timeout, period = c[probe].get("timeoutSeconds"), c[probe].get("periodSeconds")
            assert isinstance(timeout, int) and timeout >= 1, f"{where}: {probe} timeoutSeconds"
            assert isinstance(period, int) and period >= 1, f"{where}: {probe} periodSeconds"
    # every serving workload was looked at (a renderer or filter that skips them all fails)
    services = {f"Deployment/{RELEASE}-{n}" for n in ("feast", "mlflow", "payload-sink", "redis")}
    services |= {f"StatefulSet/{RELEASE}-{n}" for n in ("minio", "postgresql")}
    isvcs = {
        f"InferenceService/{m}.{c}"
        for m in MODELS
        for c in ("predictor", "transformer", "explainer")
    }
    assert served == services | isvcs


@every_values_file
def test_model_servers_use_the_kserve_health_endpoints(values_file: str) -> None:
    port = values(values_file)["serving"]["port"]
    for obj in render(values_file):
        if obj["kind"] == "InferenceService":
            for _, pod in pod_specs(obj):
                (c,) = pod["containers"]
                assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": port}
                assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": port}
                assert c["ports"] == [{"name": "http1", "containerPort": port, "protocol": "TCP"}]
        elif obj["metadata"]["name"] == f"{RELEASE}-payload-sink" and obj["kind"] == "Deployment":
            (c,) = obj["spec"]["template"]["spec"]["containers"]
            assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"


# ---------------------------------------------------------------- images


@every_values_file
def test_images_are_pinned_and_ours_is_the_one_image(values_file: str) -> None:
    v = values(values_file)
    pinned = {
        f"{i['repository']}:{i['tag']}@{i['digest']}"
        for i in (v["postgresql"]["image"], v["minio"]["image"], v["minio"]["mcImage"])
    } | {
        f"{v['redis']['image']['repository']}:{v['redis']['image']['tag']}@{v['redis']['image']['digest']}"
    }
    seen = set()
    for where, _, c in all_containers(render(values_file)):
        image = c["image"]
        name, _, tag = image.split("@")[0].rpartition(":")
        assert name and tag and tag != "latest", f"{where}: {image}"
        assert ours(c) or image in pinned, f"{where}: {image} is neither ours nor pinned by digest"
        seen.add(image)
    assert IMAGE in seen


# ---------------------------------------------------------------- credentials


def env_of(c: dict) -> Iterator[dict]:
    yield from c.get("env", [])


@every_values_file
def test_credentials_only_through_secret_references(values_file: str) -> None:
    docs = render(values_file)
    assert not [o for o in docs if o["kind"] == "Secret"]
    for where, _, c in all_containers(docs):
        assert "envFrom" not in c, where
        for e in env_of(c):
            if SECRET_NAME.search(e["name"]) or e["name"].endswith("_USER"):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                assert ref and ref.get("name") and ref.get("key"), f"{where}: {e['name']}"
            value = e.get("value", "")
            # Composite values may only interpolate secret-backed variables, never carry one.
            assert not re.search(r"://[^$/]+:[^$@/]+@", value), f"{where}: {e['name']} = {value}"


def test_no_credentials_in_committed_values() -> None:
    for path in CHART.glob("values*.yaml"):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"^\s*(password|accessKeyId|secretAccessKey):\s*(.*)$", text, re.M):
            assert m.group(2).strip() in {'""', "''"}, f"{path.name}: {m.group(0).strip()}"


# ---------------------------------------------------------------- service accounts and RBAC


@every_values_file
def test_only_the_rollout_controllers_mount_a_token(values_file: str) -> None:
    for obj in render(values_file):
        for where, pod in pod_specs(obj):
            is_rollout = obj["metadata"]["name"].startswith(f"{RELEASE}-rollout-")
            assert pod.get("automountServiceAccountToken") is is_rollout, where
            assert pod.get("serviceAccountName", "default") != "default", where


@every_values_file
def test_rollout_roles_allow_only_get_and_patch_of_their_own_inference_service(
    values_file: str,
) -> None:
    docs = render(values_file)
    assert not [o for o in docs if o["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    roles = {o["metadata"]["name"]: o for o in docs if o["kind"] == "Role"}
    bindings = [o for o in docs if o["kind"] == "RoleBinding"]
    deployments = {o["metadata"]["name"]: o for o in docs if o["kind"] == "Deployment"}
    for model in MODELS:
        name = f"{RELEASE}-rollout-{model}"
        assert roles[name]["rules"] == [
            {
                "apiGroups": ["serving.kserve.io"],
                "resources": ["inferenceservices"],
                "resourceNames": [model],
                "verbs": ["get", "patch"],
            }
        ]
        (binding,) = [b for b in bindings if b["roleRef"]["name"] == name]
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}
        ]
        pod = deployments[name]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == name
    assert len(roles) == len(bindings) == len(MODELS)


# ---------------------------------------------------------------- network policies


def policies(docs: tuple[dict, ...]) -> list[dict]:
    return [o for o in docs if o["kind"] == "NetworkPolicy"]


@every_values_file
def test_ingress_is_denied_by_default_to_every_pod_of_the_release(values_file: str) -> None:
    docs = render(values_file)
    (deny,) = [p for p in policies(docs) if p["metadata"]["name"].endswith("default-deny-ingress")]
    assert deny["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in deny["spec"]
    for obj in docs:
        for where, labels in pod_labels(obj):
            assert selects(deny["spec"]["podSelector"], labels), f"{where} escapes default deny"


@every_values_file
def test_every_service_has_an_allow_policy_for_its_port(values_file: str) -> None:
    docs = render(values_file)
    pods = [
        (labels, pod)
        for o in docs
        for (_, labels), (_, pod) in zip(pod_labels(o), pod_specs(o), strict=True)
    ]
    allow = [p for p in policies(docs) if p["spec"].get("ingress")]
    for svc in (o for o in docs if o["kind"] == "Service"):
        backends = [
            (lb, pod) for lb, pod in pods if selects({"matchLabels": svc["spec"]["selector"]}, lb)
        ]
        assert backends, f"{name_of(svc)} selects no pod"
        for labels, pod in backends:
            named = {
                p["name"]: p["containerPort"]
                for _, c in containers(pod)
                for p in c.get("ports", [])
            }
            for sp in svc["spec"]["ports"]:
                port = named.get(sp["targetPort"], sp["targetPort"])
                assert any(
                    selects(p["spec"]["podSelector"], labels)
                    and any(
                        port in [q["port"] for q in r.get("ports", [])]
                        for r in p["spec"]["ingress"]
                    )
                    for p in allow
                ), f"{name_of(svc)} port {port}: no NetworkPolicy allows it"


@every_values_file
def test_inference_services_are_reachable_from_knative_and_kourier(values_file: str) -> None:
    docs = render(values_file)
    (isvc_policy,) = [
        p for p in policies(docs) if p["metadata"]["name"].endswith("inferenceservices")
    ]
    sources = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in isvc_policy["spec"]["ingress"]
        for peer in rule["from"]
        if "namespaceSelector" in peer
    }
    assert sources == {"knative-serving", "kourier-system"}
    labels = {"serving.kserve.io/inferenceservice": "house-price"}
    assert selects(isvc_policy["spec"]["podSelector"], labels)


# ---------------------------------------------------------------- commands and wiring


def isvc(docs: tuple[dict, ...], model: str) -> dict:
    (obj,) = [o for o in docs if o["kind"] == "InferenceService" and o["metadata"]["name"] == model]
    return obj


@every_values_file
def test_inference_services_run_the_contracted_commands(values_file: str) -> None:
    docs = render(values_file)
    sink = f"http://{RELEASE}-payload-sink.{NAMESPACE}.svc.cluster.local/"
    for model in MODELS:
        obj = isvc(docs, model)
        assert obj["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
        config = f"/etc/mlplatform/{model}.yaml"
        expected = {
            "predictor": ["--model_version", "1"],
            "transformer": [],
            "explainer": [],
        }
        for component, extra in expected.items():
            spec = obj["spec"][component]
            (c,) = spec["containers"]
            assert c["name"] == "kserve-container"
            assert c["command"] == ["python", "-m", "mlplatform.serving", component]
            assert c["args"] == [
                "--config",
                config,
                "--model_name",
                model,
                *extra,
                "--http_port",
                "8080",
            ]
            if component == "predictor":  # the one component that logs
                assert spec["logger"] == {
                    "mode": "all",
                    "url": sink,
                    "metadataHeaders": [EXPLAINER_HEADER],
                }
                assert spec["labels"]["endpoint"] == "v1"
            else:
                assert "logger" not in spec and "endpoint" not in spec["labels"]
            mounts = {m["mountPath"] for m in c["volumeMounts"]}
            assert "/etc/mlplatform" in mounts


def test_model_server_args_parse_with_the_servers_own_parser() -> None:
    """The flags the chart passes are the ones mlplatform.serving's parsers define."""
    import argparse

    from mlplatform.serving import predictor
    from mlplatform.serving.process import base_parser

    for obj in (o for o in render() if o["kind"] == "InferenceService"):
        for component in ("predictor", "transformer", "explainer"):
            own = predictor.parser() if component == "predictor" else None
            parser = own or argparse.ArgumentParser(parents=[base_parser()])
            args = obj["spec"][component]["containers"][0]["args"]
            parsed, unknown = parser.parse_known_args(args)
            assert unknown == [], (component, unknown)
            assert str(parsed.config).endswith(f"{obj['metadata']['name']}.yaml")


def test_canary_revision_pins_the_challenger_version_and_labels_its_events() -> None:
    """The canary revision names its version (no alias that promotion deletes) and carries it
    in the ``endpoint`` label KServe's agent copies into each event's ``ce-endpoint``."""
    from mlplatform.serving import predictor as server

    docs = render(
        "values.yaml",
        "models.house-price.canaryTrafficPercent=25",
        "models.house-price.modelVersion=7",
    )
    predictor = isvc(docs, "house-price")["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 25
    parsed, _ = server.parser().parse_known_args(predictor["containers"][0]["args"])
    assert parsed.model_version == "7"
    assert predictor["labels"][ENDPOINT_LABEL] == endpoint_label("7")
    other = isvc(docs, "credit-risk")["spec"]["predictor"]
    assert other["labels"][ENDPOINT_LABEL] == endpoint_label("1")
    assert "canaryTrafficPercent" not in other


@every_values_file
def test_jobs_and_controllers_run_the_contracted_commands(values_file: str) -> None:
    docs = render(values_file)
    v = values(values_file)
    by_name = {name_of(o): o for o in docs}
    for model in MODELS:
        config = f"/etc/mlplatform/{model}.yaml"
        monitor = by_name[f"CronJob/{RELEASE}-monitor-{model}"]
        assert monitor["spec"]["schedule"] == v["monitor"]["schedule"]
        job = monitor["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        command = ["mlplatform", "monitor", "--config", config, "--aligned"]  # one alert a window
        assert job["containers"][0]["command"] == command
        retrain = by_name[f"CronJob/{RELEASE}-retrain-{model}"]
        job = retrain["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        c = job["containers"][0]
        assert c["command"] == ["mlplatform", "retrain", "--config", config, "--backend", "kfp"]
        assert {"name": "KFP_HOST", "value": v["kfp"]["host"]} in c["env"]
        rollout = by_name[f"Deployment/{RELEASE}-rollout-{model}"]
        c = rollout["spec"]["template"]["spec"]["containers"][0]
        assert c["command"] == [
            "mlplatform",
            "rollout",
            "--config",
            config,
            "--backend",
            "kserve",
            "--namespace",
            NAMESPACE,
            "--sink-url",
            f"http://{RELEASE}-payload-sink.{NAMESPACE}.svc.cluster.local",
            "--watch",
        ]
        assert rollout["spec"]["strategy"]["type"] == "Recreate"
    sink = by_name[f"Deployment/{RELEASE}-payload-sink"]["spec"]["template"]["spec"]
    (c,) = sink["containers"]
    assert c["command"] == ["python", "-m", "mlplatform.serving", "sink"]
    assert c["args"] == ["--config", f"/etc/mlplatform/{sorted(MODELS)[0]}.yaml", "--port", "8080"]
    # the stores they share (serve.payload_store, monitor.alert_store):
    # tests/deploy/test_chart_stores.py
    assert "/etc/mlplatform" in {m["mountPath"] for m in c["volumeMounts"]}


@every_values_file
def test_cluster_overrides_reach_every_mlplatform_container(values_file: str) -> None:
    tracking = f"http://{RELEASE}-mlflow.{NAMESPACE}.svc.cluster.local:5000"
    for where, _, c in all_containers(render(values_file)):
        if not ours(c) or c["name"] == "mlflow":
            continue
        env = {e["name"]: e.get("value") for e in env_of(c)}
        assert env["MLPLATFORM__REGISTRY__TRACKING_URI"] == tracking, where
        assert env["HOME"] == "/tmp", where
        if "transformer" in where or c["name"].startswith("feast"):
            assert env["MLPLATFORM__FEATURE_STORE__STORE_YAML"] == (
                "/app/feature_repo/feature_store.cluster.yaml"
            ), where
            assert env["FEAST_REGISTRY_PATH"] == "/feast/registry.db", where
            assert env["REDIS_CONNECTION_STRING"].startswith(f"{RELEASE}-redis:6379"), where


@every_values_file
def test_mlflow_uses_postgresql_and_s3_through_secrets(values_file: str) -> None:
    docs = render(values_file)
    (mlflow,) = [o for o in docs if name_of(o) == f"Deployment/{RELEASE}-mlflow"]
    c = mlflow["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["value"] == (
        f"postgresql://$(DB_USER):$(DB_PASSWORD)@{RELEASE}-postgresql:5432/mlflow"
    )
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == f"http://{RELEASE}-minio:9000"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "DB_USER", "DB_PASSWORD"):
        assert "secretKeyRef" in env[name]["valueFrom"], name
    names = [e["name"] for e in c["env"]]
    assert names.index("DB_PASSWORD") < names.index("MLFLOW_BACKEND_STORE_URI")  # $(VAR) order
    assert "--serve-artifacts" in c["args"]
    assert f"--allowed-hosts={RELEASE}-mlflow*,localhost*,127.0.0.1*" in c["args"]
