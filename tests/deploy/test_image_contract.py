"""One image, named once (src/mlplatform/image.py): the chart, the compiled pipeline and the
Makefile use that name, and the Dockerfile builds it pinned, non-root and entrypoint-free."""

from __future__ import annotations

import fnmatch
import re
import subprocess

import pytest
import yaml
from k8s_render import CHART, ROOT, VALUES_FILES, all_containers, render

from mlplatform.image import IMAGE, IMAGE_REPOSITORY, IMAGE_TAG

DOCKERFILE = ROOT / "images" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_values_use_the_image_defined_in_the_package() -> None:
    v = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert (v["image"]["repository"], v["image"]["tag"]) == (IMAGE_REPOSITORY, IMAGE_TAG)
    for name in VALUES_FILES[1:]:
        overlay = yaml.safe_load((CHART / name).read_text(encoding="utf-8"))
        assert set(overlay.get("image", {})) <= {"pullPolicy"}, f"{name} must not rename the image"


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_every_mlplatform_container_runs_the_image(values_file: str) -> None:
    own = [
        c["image"] for _, _, c in all_containers(render(values_file)) if "mlplatform" in c["image"]
    ]
    assert len(own) >= 15
    assert set(own) == {IMAGE}


def test_compiled_pipeline_runs_the_same_image() -> None:
    spec, _platform = yaml.safe_load_all(
        (ROOT / "pipelines" / "training_pipeline.yaml").read_text(encoding="utf-8")
    )
    executors = spec["deploymentSpec"]["executors"]
    images = {name: e["container"]["image"] for name, e in executors.items()}
    assert len(images) >= 6
    assert set(images.values()) == {IMAGE}, images


def test_makefile_reads_the_same_image_name() -> None:
    out = subprocess.run(
        ["make", "--no-print-directory", "-s", "-f", "mk/cluster.mk", "image-name"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == IMAGE


def test_base_image_is_pinned_by_tag_and_digest() -> None:
    (base,) = [rest for word, rest in instructions() if word == "FROM"]
    assert re.fullmatch(r"\S+/python:3\.11\.\d+-slim-\w+@sha256:[0-9a-f]{64}", base), base


def test_dependencies_come_from_the_lock_and_the_package_without_deps() -> None:
    runs = [rest for word, rest in instructions() if word == "RUN"]
    assert any("pip install --no-cache-dir -r requirements.lock" in r for r in runs)
    assert any("pip install --no-cache-dir --no-deps ." in r for r in runs)
    copies = [rest.split() for word, rest in instructions() if word == "COPY"]
    assert ["requirements.lock", "./"] in copies
    assert instructions().index(("COPY", "requirements.lock ./")) < instructions().index(
        ("COPY", "src ./src")
    ), "the dependency layer must not depend on the source"


def test_runs_as_uid_10001_with_telemetry_off_and_no_entrypoint() -> None:
    ins = instructions()
    users = [rest for word, rest in ins if word == "USER"]
    assert users and users[-1] == "10001:10001"
    assert ins[-1][0] in {"CMD", "USER"} and not [w for w, _ in ins if w == "ENTRYPOINT"]
    env = " ".join(rest for word, rest in ins if word == "ENV")
    for setting in ("MLFLOW_DISABLE_TELEMETRY=true", "DVC_NO_ANALYTICS=1", "DO_NOT_TRACK=1"):
        assert setting in env
    assert ("WORKDIR", "/app") in ins
    assert not [rest for word, rest in ins if word == "ADD"], "ADD fetches URLs: use COPY"


def test_runtime_folders_are_copied_and_the_context_allows_them() -> None:
    sources = [
        rest.split()[0] for word, rest in instructions() if word == "COPY" and "--from" not in rest
    ]
    for folder in ("configs", "feature_repo", "pipelines", "src"):
        assert folder in sources
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:  # Docker's rule: the last matching pattern wins
        verdict = False
        for p in patterns:
            negate, pat = p.startswith("!"), p.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/"):
                verdict = not negate
        return verdict

    for source in (s for c in sources for s in [c] if s != "./"):
        assert not ignored(source), f"{source} is excluded by .dockerignore"
    for heavy in (".venv", ".git", "data", "artifacts", "mlruns", ".tools", "feature_repo/data"):
        assert ignored(heavy), f"{heavy} would be sent to the Docker daemon"
