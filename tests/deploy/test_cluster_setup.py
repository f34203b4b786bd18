"""Cluster set-up: kind config, manifests, the Makefile fragment, the scripts and the docs agree
with each other and pin every upstream version."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from types import ModuleType

import pytest
import yaml
from k8s_render import CRD_DIR, RELEASE, ROOT, containers, pod_specs, render

MK = ROOT / "mk" / "cluster.mk"
DOCS = ROOT / "README.md"  # the "Deploy on kind" section
TARGETS = (
    "tools",
    "image",
    "kind-up",
    "kind-load",
    "install-deps",
    "deploy",
    "pipeline-upload",
    "pipeline-run",
    "materialize",
    "kind-down",
    "minikube-up",
    "minikube-load",
    "minikube-install-deps",
    "minikube-deploy",
    "minikube-materialize",
    "minikube-down",
)
VERSION_VARS = (
    "KIND_NODE_IMAGE",
    "K8S_VERSION",
    "CERT_MANAGER_VERSION",
    "KNATIVE_SERVING_VERSION",
    "KNATIVE_KOURIER_VERSION",
    "KSERVE_VERSION",
    "KFP_VERSION",
)


def mk_vars() -> dict[str, str]:
    text = MK.read_text(encoding="utf-8")
    return dict(re.findall(r"^([A-Z0-9_]+) \?= (\S+)$", text, re.M))


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-f", str(MK), "BIN=.venv/bin", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (its folder on sys.path, as when it is run)."""
    if str(ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kfp_script() -> ModuleType:
    return script("kfp_pipeline")


# ---------------------------------------------------------------- versions


def test_every_upstream_version_is_pinned_exactly() -> None:
    v = mk_vars()
    assert v["KSERVE_VERSION"] == "v0.20.0" == "v" + CRD_DIR.name.removeprefix("kserve-v")
    assert re.fullmatch(r"kindest/node:v1\.\d+\.\d+@sha256:[0-9a-f]{64}", v["KIND_NODE_IMAGE"])
    assert v["KIND_NODE_IMAGE"].split(":")[1].split("@")[0] == v["K8S_VERSION"]
    for var in VERSION_VARS:
        assert re.search(r"\d+\.\d+\.\d+", v[var]), f"{var}={v[var]} is not an exact version"
        assert "latest" not in v[var]
    assert v["KFP_VERSION"].startswith("2.")
    assert (
        v["KNATIVE_SERVING_VERSION"].split(".")[:2] == v["KNATIVE_KOURIER_VERSION"].split(".")[:2]
    )


def test_the_docs_state_every_pinned_version() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    for var in VERSION_VARS:
        value = mk_vars()[var]
        shown = value.split("@")[0].removeprefix("kindest/node:")
        assert shown in docs, f"{var} {shown} is not in the README"


def test_install_script_uses_the_versions_it_is_given() -> None:
    script = (ROOT / "scripts" / "install_deps.sh").read_text(encoding="utf-8")
    for var in VERSION_VARS[2:]:
        assert "${" + var + "}" in script, var
    assert not re.search(r"releases/download/v?\d", script), "a version is hard-coded"
    assert "deploymentMode=Knative" in script


# ---------------------------------------------------------------- Makefile fragment


def test_every_target_exists_with_help() -> None:
    text = MK.read_text(encoding="utf-8")
    for target in TARGETS:
        assert re.search(rf"^{target}:.*## \S", text, re.M), f"{target} has no '## help'"


@pytest.mark.parametrize("target", TARGETS)
def test_targets_dry_run(target: str) -> None:
    out = make("-n", target)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_cluster_targets_name_their_kube_context() -> None:
    """Never the current context: a stray `make deploy` must not hit another cluster."""
    for target, context in (("deploy", "kind-mlplatform"), ("minikube-deploy", "mlplatform")):
        out = make("-n", target).stdout
        assert f"KUBE_CONTEXT={context}" in out, out
    assert "--context kind-mlplatform" in make("-n", "pipeline-run").stdout


def test_materialize_runs_a_job_from_the_cronjob_the_chart_renders() -> None:
    """`make materialize` starts a Job from the model's materialize CronJob and follows it; a
    model without a recorded data version has no CronJob, and the target says what to run."""
    sets = (f"models.credit-risk.dataVersion={MD5}",)
    (cronjob,) = [
        o["metadata"]["name"]
        for o in render("values-kind.yaml", *sets)
        if o["kind"] == "CronJob" and "materialize" in o["metadata"]["name"]
    ]
    for target, context in (
        ("materialize", "kind-mlplatform"),
        ("minikube-materialize", "mlplatform"),
    ):
        out = make("-n", target, "MODEL=credit-risk").stdout
        assert f"job={cronjob}-$(date +%s)" in out, out
        assert f"--context {context} -n mlplatform create job $job --from=cronjob/{cronjob}" in out
        assert "wait job/" in out and "--for=condition=complete" in out
        assert "make deploy SET=models.credit-risk.dataVersion=<md5>" in out


def test_shell_scripts_parse() -> None:
    for script in sorted((ROOT / "scripts").glob("*.sh")):
        subprocess.run(["bash", "-n", str(script)], check=True)
        assert script.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash\n")
        assert "set -euo pipefail" in script.read_text(encoding="utf-8")


# ---------------------------------------------------------------- manifests


def test_kind_cluster_maps_the_ingress_node_port() -> None:
    cfg = yaml.safe_load((ROOT / "manifests" / "kind" / "cluster.yaml").read_text(encoding="utf-8"))
    assert (cfg["kind"], cfg["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    (node,) = cfg["nodes"]
    (mapping,) = node["extraPortMappings"]
    patch = yaml.safe_load(
        (ROOT / "manifests" / "knative" / "kourier-nodeport.yaml").read_text(encoding="utf-8")
    )
    assert mapping["containerPort"] == patch["spec"]["ports"][0]["nodePort"] == 31080
    assert mapping["listenAddress"] == "127.0.0.1"
    assert f"127.0.0.1:{mapping['hostPort']}" in DOCS.read_text(encoding="utf-8")


def test_knative_is_configured_for_kourier_and_the_chart() -> None:
    def data(name: str) -> dict[str, str]:
        path = ROOT / "manifests" / "knative" / f"{name}.yaml"
        return yaml.safe_load(path.read_text(encoding="utf-8"))["data"]

    assert data("config-network")["ingress-class"] == "kourier.ingress.networking.knative.dev"
    assert data("config-domain") == {"example.com": ""}
    assert set(data("config-features").values()) == {"enabled"}


#: Knative's default `registries-skipping-tag-resolving` (knative/serving knative-v1.21.1,
#: pkg/deployment/config.go; cluster-facts.md).
KNATIVE_SKIPPED_BY_DEFAULT = {"kind.local", "ko.local", "dev.local"}


def image_registry(ref: str) -> str:
    """The registry of an image reference as go-containerregistry's ``name.ParseReference``
    (what Knative checks) reads it: the first path part if it has a ``.`` or ``:`` or is
    ``localhost``, else Docker Hub."""
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "index.docker.io"


def skipped_registries() -> set[str]:
    """The registries the patch install_deps.sh applies to config-deployment skips."""
    script = (ROOT / "scripts" / "install_deps.sh").read_text(encoding="utf-8")
    assert re.search(
        r"patch configmap/config-deployment -n knative-serving --type merge \\\n"
        r'\s+--patch-file "\$MANIFESTS/knative/config-deployment\.yaml"',
        script,
    ), "install_deps.sh does not patch config-deployment"
    path = ROOT / "manifests" / "knative" / "config-deployment.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert (doc["metadata"]["name"], doc["metadata"]["namespace"]) == (
        "config-deployment",
        "knative-serving",
    )
    return set(doc["data"]["registries-skipping-tag-resolving"].split(","))


def isvc_images(values_file: str, *sets: str) -> set[str]:
    return {
        c["image"]
        for o in render(values_file, *sets)
        if o["kind"] == "InferenceService"
        for _, pod in pod_specs(o)
        for _, c in containers(pod)
    }


@pytest.mark.parametrize("values_file", ["values-kind.yaml", "values-minikube.yaml"])
def test_knative_skips_tag_resolution_for_the_node_loaded_image(values_file: str) -> None:
    """The image exists only on the node (kind load / minikube image load): Knative must not
    ask its registry for a digest, or no revision becomes Ready."""
    from mlplatform.image import IMAGE_REPOSITORY

    images = isvc_images(values_file)
    assert images, "no InferenceService rendered"
    assert {image_registry(i) for i in images} <= skipped_registries()
    assert image_registry(IMAGE_REPOSITORY) == "ghcr.io"


def test_tag_resolution_keeps_knative_defaults() -> None:
    assert skipped_registries() >= KNATIVE_SKIPPED_BY_DEFAULT


def test_an_image_under_another_registry_is_not_skipped() -> None:
    """Negative control: the check above fails for an image of a registry not in the list."""
    (image,) = isvc_images("values-kind.yaml", "image.repository=quay.io/acme/mlplatform")
    assert image_registry(image) == "quay.io" not in skipped_registries()
    assert image_registry("mlplatform:0.1.0") == "index.docker.io"
    assert image_registry("localhost:5000/mlplatform:0.1.0") == "localhost:5000"


def test_namespace_enforces_baseline_and_audits_restricted() -> None:
    (ns,) = [
        d
        for d in yaml.safe_load_all((ROOT / "manifests" / "namespaces.yaml").read_text("utf-8"))
        if d
    ]
    labels = ns["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


# ---------------------------------------------------------------- KFP script


MD5 = "0123456789abcdef0123456789abcdef"


def pipeline_configmap(*sets: str) -> dict[str, str]:
    """The data of the rendered ConfigMap <release>-pipeline (values-kind.yaml)."""
    (cm,) = [
        o
        for o in render("values-kind.yaml", *sets)
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{RELEASE}-pipeline"
    ]
    data: dict[str, str] = cm["data"]
    return data


def test_pipeline_run_bakes_the_release_overrides_into_the_config() -> None:
    """`make pipeline-run` takes its overrides from the release's ConfigMap (rendered here):
    in-cluster MLflow by its fully qualified name (the pods run in the KFP namespace), the
    DVC remote and data version to fetch, a writable run-private Feast repo."""
    from mlplatform.config import PlatformConfig

    script = kfp_script()
    data = pipeline_configmap(f"models.house-price.dataVersion={MD5}")
    assert data["data-version.house-price"] == MD5
    assert "data-version.credit-risk" not in data
    overrides = script.release_overrides(data, "house-price")
    args = script.run_arguments(ROOT / "configs" / "house-price.yaml", overrides, "abc123")
    assert set(args) == {"config_json", "git_commit"}
    cfg = PlatformConfig.from_json(args["config_json"])
    assert cfg.registry.tracking_uri == "http://mlplatform-mlflow.mlplatform.svc.cluster.local:5000"
    assert cfg.registry.artifact_root == "mlflow-artifacts:/mlplatform"
    assert (cfg.data.remote, cfg.data.version) == ("s3://mlflow/dvc", MD5)
    assert str(cfg.feature_store.repo_dir).startswith("/tmp/")
    assert cfg.model_name == "house-price"
    # --data-version wins over the release's
    other = script.release_overrides(data, "house-price", "f" * 32)
    assert other["MLPLATFORM__DATA__VERSION"] == "f" * 32


def test_pipeline_run_without_a_data_version_says_what_to_run() -> None:
    script = kfp_script()
    with pytest.raises(SystemExit) as exc:
        script.release_overrides(pipeline_configmap(), "credit-risk")
    message = str(exc.value)
    assert "make cluster-data" in message and "DATA_VERSION=" in message
    assert "models.credit-risk.dataVersion" in message


def test_a_run_config_carries_no_store_password() -> None:
    """config_json is visible to whoever opens the run in the KFP UI: the retrain CronJob's
    store URLs (with the database password expanded) must not travel in it."""
    from mlplatform.config import PlatformConfig, load_config
    from mlplatform.orchestration.retrain import run_config

    secret = "s3cr3t-password-value"
    url = f"postgresql+psycopg://mlplatform:{secret}@mlplatform-postgresql:5432/mlplatform"
    env = {"MLPLATFORM__SERVE__PAYLOAD_STORE": url, "MLPLATFORM__MONITOR__ALERT_STORE": url}
    cfg = load_config(ROOT / "configs" / "house-price.yaml", env=env)
    assert secret in cfg.to_json()  # the retrain pod's own config has it
    text = run_config(cfg).to_json()
    assert secret not in text
    assert PlatformConfig.from_json(text).train == cfg.train


def test_pipeline_versions_are_named_by_content(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = kfp_script()
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("x: 1\n")
    b.write_text("x: 2\n")
    assert script.version_name(a) == script.version_name(a) != script.version_name(b)


def test_upload_skips_a_version_already_there() -> None:
    script = kfp_script()
    pipeline = ROOT / "pipelines" / "training_pipeline.yaml"
    version = script.version_name(pipeline)
    calls: list[str] = []

    class Client:
        def get_pipeline_id(self, name: str) -> str:
            return "p1"

        def list_pipeline_versions(self, pid: str, page_size: int) -> object:
            v = type("V", (), {"display_name": version})
            return type("R", (), {"pipeline_versions": [v]})

        def upload_pipeline_version(self, *a: object, **k: object) -> None:
            calls.append("upload")

    script.upload(Client(), pipeline)
    assert calls == []
