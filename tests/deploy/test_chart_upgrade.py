"""Upgrading a release of the previous chart. Helm runs the pre-upgrade hooks before it applies
the release's new objects (Helm v3.17.2 pkg/action/upgrade.go), so the NetworkPolicies in force
then are the previous chart's, whose PostgreSQL policy admits only MLflow. The stores hook Job
reaches PostgreSQL through a hook NetworkPolicy of its own: created before the Job, deleted once
the phase has succeeded. Everything is derived from the rendered Job and the Service it calls."""

from __future__ import annotations

import copy

import pytest
from k8s_render import RELEASE, VALUES_FILES, containers, name_of, pod_labels, pod_specs, render

HOOK_JOB = f"Job/{RELEASE}-stores-db"
HOOK_POLICY = f"NetworkPolicy/{RELEASE}-stores-db"
EXTERNAL = ("postgresql.enabled=false", "postgresql.external.host=db.example.internal")

every_values_file = pytest.mark.parametrize("values_file", VALUES_FILES)

Docs = tuple[dict, ...]


def by_name(docs: Docs) -> dict[str, dict]:
    return {name_of(o): o for o in docs}


def hook_events(obj: dict) -> list[str]:
    annotations = obj["metadata"].get("annotations") or {}
    return [e for e in annotations.get("helm.sh/hook", "").split(",") if e]


def weight(obj: dict) -> int:
    return int(obj["metadata"].get("annotations", {}).get("helm.sh/hook-weight", "0"))


def hooks_in_helm_order(docs: Docs, event: str) -> list[str]:
    """The hooks of one phase in the order Helm creates them: by weight, then name (v3.17.2
    pkg/action/hooks.go, hookByWeight; a stable sort of hooks already ordered by kind)."""
    hooks = [o for o in docs if event in hook_events(o)]
    return [name_of(o) for o in sorted(hooks, key=lambda o: (weight(o), o["metadata"]["name"]))]


def matches(selector: dict, labels: dict[str, str]) -> bool:
    """matchLabels only: the chart's policies use no expressions towards these pods (asserted)."""
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def pods_by_where(docs: Docs) -> dict[str, tuple[dict[str, str], dict]]:
    """where -> (pod labels, pod spec) of every rendered pod."""
    return {
        where: (labels, pod)
        for o in docs
        for (where, labels), (_, pod) in zip(pod_labels(o), pod_specs(o), strict=True)
    }


def server_of_the_hook(docs: Docs) -> tuple[set[str], int, dict[str, int]]:
    """(the pods behind PGHOST, the container port behind PGPORT, their named ports)."""
    ((_, job_pod),) = pod_specs(by_name(docs)[HOOK_JOB])
    (c,) = job_pod["containers"]
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    service = by_name(docs)[f"Service/{env['PGHOST']}"]
    backends = {"matchLabels": service["spec"]["selector"]}
    pods = pods_by_where(docs)
    servers = {w for w, (lb, _) in pods.items() if matches(backends, lb)}
    assert servers, f"Service {env['PGHOST']} selects no pod"
    named = {
        p["name"]: p["containerPort"]
        for w in servers
        for _, sc in containers(pods[w][1])
        for p in sc.get("ports", [])
    }
    (sp,) = [p for p in service["spec"]["ports"] if p["port"] == int(env["PGPORT"])]
    return servers, named.get(sp["targetPort"], sp["targetPort"]), named


def admission_problems(policy: dict, docs: Docs) -> list[str]:
    """Why ``policy`` does not admit exactly the hook Job's pods, to exactly the pods behind the
    Service the Job connects to, on exactly the port it connects to ([] when it does)."""
    servers, port, named = server_of_the_hook(docs)
    spec, pods = policy["spec"], pods_by_where(docs)
    problems = []
    selected = {w for w, (lb, _) in pods.items() if matches(spec["podSelector"], lb)}
    if selected != servers:
        problems.append(f"selects {sorted(selected)}, not the server {sorted(servers)}")
    if spec.get("policyTypes") != ["Ingress"]:
        problems.append(f"policyTypes {spec.get('policyTypes')}")
    admitted: set[str] = set()
    for rule in spec.get("ingress", []):
        ports = [(named.get(p["port"], p["port"]), p.get("protocol", "TCP")) for p in rule["ports"]]
        if ports != [(port, "TCP")]:
            problems.append(f"rule ports {ports}, not [({port}, 'TCP')]")
        for peer in rule.get("from", [{}]):
            if set(peer) != {"podSelector"}:
                problems.append(f"peer {peer} is not a same-namespace pod selector")
                continue
            admitted |= {w for w, (lb, _) in pods.items() if matches(peer["podSelector"], lb)}
    if admitted != {HOOK_JOB}:
        problems.append(f"admits {sorted(admitted)}, not {HOOK_JOB}")
    return problems


# ---------------------------------------------------------------- the hook policy


@every_values_file
def test_the_hook_policy_admits_exactly_the_hook_job_to_postgresql(values_file: str) -> None:
    docs = render(values_file)
    policy = by_name(docs)[HOOK_POLICY]
    assert admission_problems(policy, docs) == []
    job = by_name(docs)[HOOK_JOB]
    assert policy["metadata"]["labels"] == job["metadata"]["labels"]


@every_values_file
def test_the_hook_policy_exists_before_the_job_and_goes_after_the_phase(values_file: str) -> None:
    """Pre-upgrade only: on post-install the release's own policies admit the Job already.
    Helm deletes hook-succeeded hooks once every hook of the phase has succeeded, in reverse
    order (v3.17.2 pkg/action/hooks.go:100-106), so the policy outlives the Job."""
    docs = render(values_file)
    objs = by_name(docs)
    policy, job = objs[HOOK_POLICY], objs[HOOK_JOB]
    assert hook_events(policy) == ["pre-upgrade"]
    assert weight(policy) < weight(job)
    order = hooks_in_helm_order(docs, "pre-upgrade")
    assert order.index(HOOK_POLICY) < order.index(HOOK_JOB)
    deletion = policy["metadata"]["annotations"]["helm.sh/hook-delete-policy"].split(",")
    assert set(deletion) == {"before-hook-creation", "hook-succeeded"}
    assert HOOK_POLICY not in hooks_in_helm_order(docs, "post-install")


def test_a_policy_admitting_anything_else_fails_the_check() -> None:
    """Negative controls: each variation of the rendered policy is caught."""
    docs = render()
    policy = by_name(docs)[HOOK_POLICY]

    def variant(change: str, value: object) -> dict:
        bad = copy.deepcopy(policy)
        rule = bad["spec"]["ingress"][0]
        if change == "peer-component":
            rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] = value
        elif change == "peer":
            rule["from"][0] = value
        elif change == "extra-peer":
            rule["from"].append(value)
        elif change == "port":
            rule["ports"][0]["port"] = value
        elif change == "target-component":
            bad["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] = value
        return bad

    release = {"app.kubernetes.io/instance": RELEASE}
    variants = [
        variant("peer-component", "mlflow"),
        variant("peer", {"podSelector": {"matchLabels": release}}),
        variant("extra-peer", {"namespaceSelector": {"matchLabels": {"x": "y"}}}),
        variant("port", 5433),
        variant("target-component", "minio"),
        by_name(docs)[f"NetworkPolicy/{RELEASE}-postgresql"],  # admits all of its clients
    ]
    for bad in variants:
        assert admission_problems(bad, docs), bad["spec"]


def test_the_named_port_of_the_server_counts_as_its_number() -> None:
    docs = render()
    named = copy.deepcopy(by_name(docs)[HOOK_POLICY])
    named["spec"]["ingress"][0]["ports"][0]["port"] = "postgresql"
    assert admission_problems(named, docs) == []


# ---------------------------------------------------------------- when it is not rendered


@pytest.mark.parametrize(
    "sets",
    [
        ("networkPolicy.enabled=false",),
        ("stores.createDatabase=false",),
        EXTERNAL,  # no policy of the chart selects an external server
    ],
    ids=["no-network-policies", "no-stores-hook", "external-postgresql"],
)
def test_no_hook_policy_without_policies_a_hook_or_a_bundled_server(sets: tuple[str, ...]) -> None:
    docs = render("values.yaml", *sets)
    assert HOOK_POLICY not in by_name(docs)
    if "networkPolicy.enabled=false" in sets:
        assert HOOK_JOB in by_name(docs)
        assert not [o for o in docs if o["kind"] == "NetworkPolicy"]
