"""The rehearsal's EMULATED Kubernetes API server (tests/support/rehearsal/kube_api/), fed
with the chart as `helm template` renders it for `make deploy` (values-kind.yaml, serving on).

First from a real pod process, as the rollout controller runs on the cluster: the token
volume and the `kubernetes` Service env the pod gets, the real `kubernetes` client's
`config.load_config()` and `CustomObjectsApi`, and `KServeBackend` on top; then, from this
process over HTTPS, what the rendered RBAC refuses, the patch types and the write rules.
"""

from __future__ import annotations

import copy
import itertools
import json
import socket
import ssl
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.chart import helm, load_all, template_args
from tests.support.rehearsal.image import build_image_root
from tests.support.rehearsal.kube_api import (
    ApiServer,
    KubeApi,
    api_server,
    request_info,
)
from tests.support.rehearsal.pods import (
    ClusterDns,
    KubeProxy,
    Pod,
    Volume,
    image_env,
    kube_proxy,
    remove_mount_points,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
NS = "mlplatform"
ROLLOUT = "mlplatform-rollout-house-price"  # the rollout controller of house-price
ISVCS = "/apis/serving.kserve.io/v1beta1/namespaces/mlplatform/inferenceservices"
Obj = dict[str, Any]


def reconcile(isvc: Obj) -> Obj:
    """A stand-in for the KServe controller emulation (tests/support/rehearsal/kserve.py): each
    generation becomes a ready predictor revision."""
    gen = isvc["metadata"]["generation"]
    revision = f"{isvc['metadata']['name']}-predictor-{gen:05d}"
    predictor = {"latestCreatedRevision": revision, "latestReadyRevision": revision}
    isvc["status"] = {"observedGeneration": gen, "components": {"predictor": predictor}}
    return isvc


@pytest.fixture(scope="module")
def docs() -> list[Obj]:
    """As `make deploy` renders it with serving on (the default; template_args adds the
    versions it sets), where rollout.enabled is on by default."""
    out = load_all(helm(*template_args("values-kind.yaml")).stdout)
    names = {d["metadata"]["name"] for d in out if d["kind"] == "InferenceService"}
    assert names == {"house-price", "credit-risk"}
    assert rendered(out, "Deployment", ROLLOUT)["spec"]["template"]["spec"]["serviceAccountName"]
    return out


def rendered(docs: list[Obj], kind: str, name: str) -> Obj:
    (obj,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return obj


@pytest.fixture(scope="module")
def network() -> Iterator[tuple[ClusterDns, KubeProxy]]:
    with kube_proxy() as proxy:
        yield ClusterDns(), proxy
    remove_mount_points()


# ---------------------------------------------------------------- from the rollout pod

CLIENT = """
import json, os, ssl, urllib.error, urllib.request
from kubernetes import client, config
from mlplatform.serving.traffic import KServeBackend

config.load_config()
api = client.CustomObjectsApi()
ISVC = ("serving.kserve.io", "v1beta1", "mlplatform", "inferenceservices")
out = {"env": os.environ["KUBERNETES_SERVICE_HOST"]}

def call(key, method, *args):
    try:
        out[key] = [200, getattr(api, method)(*ISVC, *args)]
    except client.ApiException as exc:
        out[key] = [exc.status, json.loads(exc.body)]

call("get", "get_namespaced_custom_object", "house-price")
call("set", "patch_namespaced_custom_object", "house-price",
     {"spec": {"predictor": {"canaryTrafficPercent": 10}}})
call("unset", "patch_namespaced_custom_object", "house-price",
     {"spec": {"predictor": {"canaryTrafficPercent": None}}})
call("other", "patch_namespaced_custom_object", "credit-risk",
     {"spec": {"predictor": {"canaryTrafficPercent": 10}}})
call("list", "list_namespaced_custom_object")
call("delete", "delete_namespaced_custom_object", "house-price")

backend = KServeBackend("mlplatform", "house-price", api, "http://unused.invalid")
steps = {"endpoint": backend.canary_endpoint()}
def percent():
    return api.get_namespaced_custom_object(*ISVC, "house-price")["spec"]["predictor"].get(
        "canaryTrafficPercent", "absent")
for name in ("set_canary_percent", "rollback", "promote"):
    getattr(backend, name)(*([50] if name == "set_canary_percent" else []))
    steps[name] = percent()
steps["serves"] = [backend.serves("1"), backend.serves("2")]
out["backend"] = steps

host = "%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
url = f"https://{host}/apis/serving.kserve.io/v1beta1/namespaces/mlplatform/inferenceservices"
url += "/house-price"
tls = ssl.create_default_context(cafile="/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
for key, headers in (("anonymous", {}), ("bad_token", {"Authorization": "Bearer forged"})):
    try:
        urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=tls)
        out[key] = [200, None]
    except urllib.error.HTTPError as exc:
        out[key] = [exc.code, json.loads(exc.read())]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def from_pod(
    docs: list[Obj], network: tuple[ClusterDns, KubeProxy], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Obj, KubeApi, ApiServer]]:
    """The client script run once in a pod of the rollout Deployment's template, with what
    the stand-in gives that template (env, token volume) and a fresh emptyDir at /tmp."""
    dns, proxy = network
    tmp = tmp_path_factory.mktemp("kube-api")
    api = KubeApi(docs, NS, on_write=reconcile)
    with api_server(api, dns, tmp / "pki", proxy) as server:
        template = rendered(docs, "Deployment", ROLLOUT)["spec"]["template"]
        token = server.credentials(template, tmp / "token")
        assert token is not None
        (tmp / "emptydir").mkdir()
        env = {**image_env(ROOT / "images" / "Dockerfile"), **server.pod_env()}
        image = build_image_root(ROOT, tmp / "image" / "app")
        argv = [sys.executable, "-c", CLIENT]
        pod = Pod("rollout-0", NS, argv, env, [token, Volume("/tmp", tmp / "emptydir")], image)
        log = tmp / "rollout-0.log"
        pod.start(dns, tmp / "run", log)
        try:
            assert pod.process is not None and pod.process.wait(60) == 0, log.read_text()[-3000:]
        finally:
            pod.stop()
        yield json.loads(log.read_text().strip().splitlines()[-1]), api, server


def forbidden_text(verb: str, name: str = "", user: str = ROLLOUT) -> str:
    """The API server's refusal text for ``user`` (a ServiceAccount of the release, or a
    ``system:`` user) doing ``verb`` on ``name`` (or the collection)."""
    subject = "inferenceservices.serving.kserve.io" + (f' "{name}"' if name else "")
    who = user if user.startswith("system:") else f"system:serviceaccount:{NS}:{user}"
    return (
        f'{subject} is forbidden: User "{who}" cannot {verb} resource "inferenceservices" '
        f'in API group "serving.kserve.io" in the namespace "{NS}"'
    )


def test_the_pod_reaches_the_api_through_the_kubernetes_service(from_pod: Any) -> None:
    out, _, server = from_pod
    assert server.service_ip is not None and out["env"] == server.service_ip


def test_the_rollout_pod_gets_and_merge_patches_its_inference_service(from_pod: Any) -> None:
    out, api, _ = from_pod
    code, got = out["get"]
    assert code == 200 and got["metadata"]["name"] == "house-price"
    assert got["spec"]["predictor"]["labels"]["endpoint"] == "v1"  # as rendered
    assert got["status"]["observedGeneration"] == 1  # the controller reconciled the seed
    code, after_set = out["set"]
    assert code == 200 and after_set["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert after_set["metadata"]["generation"] == 2
    code, after_unset = out["unset"]
    assert code == 200 and "canaryTrafficPercent" not in after_unset["spec"]["predictor"]
    assert after_unset["metadata"]["generation"] == 3
    assert int(after_unset["metadata"]["resourceVersion"]) > int(
        after_set["metadata"]["resourceVersion"]
    )
    assert after_unset["spec"]["predictor"]["labels"] == got["spec"]["predictor"]["labels"]
    # credit-risk was never written: only house-price's generations moved.
    assert api.get("credit-risk")["metadata"]["generation"] == 1


def test_the_rollout_pod_is_refused_everything_its_role_does_not_grant(from_pod: Any) -> None:
    out, api, _ = from_pod
    assert out["other"][0] == 403
    assert out["other"][1]["message"] == forbidden_text("patch", "credit-risk")
    assert out["other"][1]["reason"] == "Forbidden" and out["other"][1]["kind"] == "Status"
    assert out["list"][0] == 403 and out["list"][1]["message"] == forbidden_text("list")
    assert out["delete"][0] == 403
    assert out["delete"][1]["message"] == forbidden_text("delete", "house-price")
    assert "canaryTrafficPercent" not in api.get("credit-risk")["spec"]["predictor"]


def test_without_a_token_is_anonymous_and_a_forged_token_unauthorized(from_pod: Any) -> None:
    out, _, _ = from_pod
    assert out["anonymous"][0] == 403
    assert out["anonymous"][1]["message"] == forbidden_text(
        "get", "house-price", "system:anonymous"
    )
    assert out["bad_token"][0] == 401 and out["bad_token"][1]["reason"] == "Unauthorized"


def test_kserve_backend_moves_traffic_through_the_stand_in(from_pod: Any) -> None:
    steps = from_pod[0]["backend"]
    assert steps["endpoint"] == "v1"  # the predictor's endpoint label
    assert steps["set_canary_percent"] == 50
    assert steps["rollback"] == 0
    assert steps["promote"] == "absent"  # null removed the field: 100 % to the latest
    assert steps["serves"] == [True, False]  # ready (the controller's status), version 1


# ---------------------------------------------------------------- from this process


@pytest.fixture
def serve(
    network: tuple[ClusterDns, KubeProxy], tmp_path: Path
) -> Iterator[Callable[[list[Obj]], tuple[KubeApi, ApiServer]]]:
    """Start a stand-in (no Service) for the documents given; all stopped afterwards."""
    with ExitStack() as stack:
        numbers = itertools.count()

        def start(documents: list[Obj]) -> tuple[KubeApi, ApiServer]:
            api = KubeApi(documents, NS, on_write=reconcile)
            pki = tmp_path / f"pki-{next(numbers)}"
            return api, stack.enter_context(api_server(api, network[0], pki))

        yield start


def http(server: ApiServer, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    tls = ssl.create_default_context(cafile=str(server.ca))
    return httpx.Client(base_url=server.url, headers=headers, verify=tls, timeout=10)


def api_client(server: ApiServer, token: str) -> Any:
    """The real client's ApiClient with this token (what load_config would set up)."""
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host, cfg.ssl_ca_cert = server.url, str(server.ca)
    cfg.api_key["authorization"] = f"bearer {token}"
    return client.ApiClient(cfg)


def edited_role(docs: list[Obj], edit: Callable[[Obj], None]) -> list[Obj]:
    out = copy.deepcopy(docs)
    edit(rendered(out, "Role", ROLLOUT)["rules"][0])
    return out


def test_negative_control_a_role_without_patch_refuses_the_patch(
    docs: list[Obj], serve: Any
) -> None:
    from kubernetes import client

    api, server = serve(edited_role(docs, lambda rule: rule["verbs"].remove("patch")))
    group = ("serving.kserve.io", "v1beta1", NS, "inferenceservices", "house-price")
    with api_client(server, api.issue_token(ROLLOUT)) as c:
        custom = client.CustomObjectsApi(c)
        assert custom.get_namespaced_custom_object(*group)["metadata"]["name"] == "house-price"
        with pytest.raises(client.ApiException) as refused:
            custom.patch_namespaced_custom_object(*group, {"spec": {"predictor": {"x": 1}}})
    assert refused.value.status == 403
    assert json.loads(refused.value.body)["message"] == forbidden_text("patch", "house-price")
    assert api.get("house-price")["metadata"]["generation"] == 1


def test_a_binding_to_a_missing_role_says_so(docs: list[Obj], serve: Any) -> None:
    kept = [d for d in docs if not (d["kind"] == "Role" and d["metadata"]["name"] == ROLLOUT)]
    api, server = serve(kept)
    with http(server, api.issue_token(ROLLOUT)) as c:
        got = c.get(f"{ISVCS}/house-price")
    assert got.status_code == 403
    assert got.json()["message"] == (
        forbidden_text("get", "house-price")
        + f': RBAC: role.rbac.authorization.k8s.io "{ROLLOUT}" not found'
    )


def test_an_unknown_object_is_404_for_a_caller_allowed_to_read_it(
    docs: list[Obj], serve: Any
) -> None:
    api, server = serve(edited_role(docs, lambda rule: rule.pop("resourceNames")))
    with http(server, api.issue_token(ROLLOUT)) as c:
        missing, listed = c.get(f"{ISVCS}/nope"), c.get(ISVCS)
    assert missing.status_code == 404 and missing.json()["reason"] == "NotFound"
    assert missing.json()["message"] == 'inferenceservices.serving.kserve.io "nope" not found'
    assert listed.status_code == 403  # resourceNames gone, but the Role still has no `list`


MERGE = "application/merge-patch+json"


def test_patch_types_and_bodies_are_answered_as_for_a_custom_resource(
    docs: list[Obj], serve: Any
) -> None:
    api, server = serve(docs)
    url = f"{ISVCS}/house-price"
    with http(server, api.issue_token(ROLLOUT)) as c:

        def patch(body: Any, content_type: str) -> httpx.Response:
            return c.patch(url, content=json.dumps(body), headers={"Content-Type": content_type})

        strategic = patch({"spec": {}}, "application/strategic-merge-patch+json")
        as_list = patch([{"op": "add", "path": "/spec/x", "value": 1}], MERGE)
        op = {"op": "add", "path": "/spec/predictor/canaryTrafficPercent", "value": 30}
        json_patch = patch([op], "application/json-patch+json")  # real: accepted
        not_json = c.patch(url, content=b"{oops", headers={"Content-Type": MERGE})
        charset = patch(
            {"spec": {"predictor": {"canaryTrafficPercent": 20}}}, f"{MERGE}; charset=utf-8"
        )
    assert strategic.status_code == 415 and strategic.json()["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )
    assert as_list.status_code == 422  # the pinned client sends a list body as a merge patch
    assert json_patch.status_code == 415 and json_patch.json()["message"].startswith("EMULATED")
    assert not_json.status_code == 400 and not_json.json()["message"] == "Invalid JSON Patch"
    assert charset.status_code == 200
    assert api.get("house-price")["spec"]["predictor"]["canaryTrafficPercent"] == 20


def test_writes_keep_status_and_move_versions_as_the_api_server_does(
    docs: list[Obj], serve: Any
) -> None:
    api, server = serve(docs)
    url = f"{ISVCS}/house-price"
    seeded = api.get("house-price")
    rv = seeded["metadata"]["resourceVersion"]
    with http(server, api.issue_token(ROLLOUT)) as c:

        def patch(body: Obj) -> httpx.Response:
            return c.patch(url, content=json.dumps(body), headers={"Content-Type": MERGE})

        same = patch({"spec": {"predictor": {"minReplicas": 1}}})  # already 1: no write
        status_only = patch({"status": {"observedGeneration": 99}})  # the status subresource
        labelled = patch({"metadata": {"labels": {"rehearsal": "yes"}}})
        stale = patch({"metadata": {"resourceVersion": rv}, "spec": {"predictor": {"x": 1}}})
    assert same.json()["metadata"]["resourceVersion"] == rv
    assert status_only.json()["status"] == seeded["status"]
    assert status_only.json()["metadata"]["resourceVersion"] == rv
    assert labelled.json()["metadata"]["generation"] == 1  # metadata only: same generation
    assert labelled.json()["metadata"]["resourceVersion"] != rv
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
    assert api.get("house-price")["metadata"]["labels"]["rehearsal"] == "yes"


def test_only_pods_that_automount_get_a_token(docs: list[Obj], serve: Any, tmp_path: Path) -> None:
    """The pod's automountServiceAccountToken wins over its ServiceAccount's, default true."""
    api, server = serve(docs)
    rollout = rendered(docs, "Deployment", ROLLOUT)["spec"]["template"]
    mlflow = rendered(docs, "Deployment", "mlplatform-mlflow")["spec"]["template"]
    assert rendered(docs, "ServiceAccount", ROLLOUT)["automountServiceAccountToken"] is False
    assert server.credentials(mlflow, tmp_path / "mlflow") is None
    unset = copy.deepcopy(rollout)
    del unset["spec"]["automountServiceAccountToken"]  # then the ServiceAccount's false
    assert server.credentials(unset, tmp_path / "unset") is None
    volume = server.credentials(rollout, tmp_path / "rollout")
    assert volume is not None and volume.read_only
    assert volume.path == "/var/run/secrets/kubernetes.io/serviceaccount"
    assert sorted(p.name for p in volume.source.iterdir()) == ["ca.crt", "namespace", "token"]
    assert (volume.source / "namespace").read_text() == NS
    token = (volume.source / "token").read_text()
    assert api.authenticate(f"Bearer {token}") == api.tokens[token]
    assert api.tokens[token].name == f"system:serviceaccount:{NS}:{ROLLOUT}"


def test_the_certificate_is_valid_for_the_service_names_only(from_pod: Any) -> None:
    _, _, server = from_pod
    assert server.service_ip is not None
    ours, this_machines = (
        ssl.create_default_context(cafile=str(server.ca)),
        ssl.create_default_context(),
    )
    for name in ("kubernetes.default.svc", "kubernetes.default.svc.cluster.local"):
        assert handshake(server.service_ip, name, ours) is None
    assert "mismatch" in str(handshake(server.service_ip, "mlplatform-mlflow.mlplatform", ours))
    assert "unable to get local issuer" in str(
        handshake(server.service_ip, "kubernetes.default", this_machines)
    )


def handshake(ip: str, name: str, tls: ssl.SSLContext) -> str | None:
    """None if a TLS client checking ``name`` accepts the server at ``ip:443``, else why not."""
    with socket.create_connection((ip, 443), timeout=5) as raw:
        try:
            tls.wrap_socket(raw, server_hostname=name).close()
        except ssl.SSLCertVerificationError as exc:
            return str(exc)
    return None


@pytest.mark.parametrize(
    ("method", "target", "verb", "name"),
    [
        ("GET", f"{ISVCS}/house-price", "get", "house-price"),
        ("GET", ISVCS, "list", ""),
        ("GET", f"{ISVCS}?watch=true", "watch", ""),
        ("PATCH", f"{ISVCS}/house-price", "patch", "house-price"),
        ("PUT", f"{ISVCS}/house-price", "update", "house-price"),
        ("POST", ISVCS, "create", ""),
        ("DELETE", f"{ISVCS}/house-price", "delete", "house-price"),
        ("DELETE", ISVCS, "deletecollection", ""),
    ],
)
def test_request_verbs_follow_requestinfo(method: str, target: str, verb: str, name: str) -> None:
    info = request_info(method, target)
    assert (info.verb, info.name, info.namespace, info.group) == (
        verb,
        name,
        NS,
        "serving.kserve.io",
    )
    assert info.resource == "inferenceservices" and info.resource_request


def test_the_controller_hook_sees_each_write_and_its_failure_fails_no_write(
    docs: list[Obj],
) -> None:
    seen: list[Obj] = []

    def flaky(isvc: Obj) -> Obj:
        seen.append(copy.deepcopy(isvc))
        if len(seen) > 2:  # the two seeds reconcile, then the controller breaks
            raise RuntimeError("controller down")
        return reconcile(isvc)

    api = KubeApi(docs, NS, on_write=flaky)
    assert [s["metadata"]["name"] for s in seen] == ["credit-risk", "house-price"]
    headers = {
        "Authorization": f"Bearer {api.issue_token(ROLLOUT)}",
        "Content-Type": "application/merge-patch+json",
    }
    body = json.dumps({"spec": {"predictor": {"canaryTrafficPercent": 10}}}).encode()
    code, written = api.handle("PATCH", f"{ISVCS}/house-price", headers, body)
    assert code == 200 and seen[-1]["spec"] == written["spec"]
    assert [str(e) for e in api.reconcile_errors] == ["controller down"]
    assert api.get("house-price")["status"]["observedGeneration"] == 1  # not reconciled
