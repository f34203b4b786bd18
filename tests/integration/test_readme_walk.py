"""The README's CLI walk-through, run exactly as written, in a fresh folder.

The commands are read from README.md (the ```bash block between ``<!-- walk -->`` and
``<!-- /walk -->``) and run in order by one bash with ``set -euo pipefail``, as a newcomer
pasting them would, so the README and the commands cannot drift apart. It uses the configs'
default ports (8080-8090, checked free first) because the README's curl lines name them.

``MLPLATFORM_WALK_TRANSCRIPT=path`` keeps the console output (what the README shows).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("configs", "feature_repo", "pipelines", "components")
PORTS = (8080, 8081, 8082, 8083, 8084, 8090)

pytestmark = pytest.mark.slow


def walk_commands(readme: str) -> str:
    """The bash block of the walk-through section."""
    m = re.search(r"<!-- walk -->\s*```bash\n(.*?)```\s*<!-- /walk -->", readme, re.S)
    assert m, "README.md has no <!-- walk --> ```bash ... ``` <!-- /walk --> block"
    return m.group(1)


def test_walk_block_is_found_and_names_the_loop() -> None:
    script = walk_commands((ROOT / "README.md").read_text())
    for step in ("data", "pipeline run", "features materialize", "serve", "traffic"):
        assert f"mlplatform {step}" in script
    for step in ("monitor", "retrain", "rollout", "lineage"):
        assert f"mlplatform {step}" in script


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_readme_walk_runs_as_pasted(tmp_path: Path) -> None:
    busy = [p for p in PORTS if not _port_free(p)]
    assert not busy, f"ports {busy} are taken: the walk uses the configs' default ports"
    for name in COPIED:
        shutil.copytree(ROOT / name, tmp_path / name)
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    script = "set -euo pipefail\n" + walk_commands((ROOT / "README.md").read_text())
    # a newcomer's shell: no config overrides, and no MLflow URI something in this test
    # process exported (mlflow.set_*_uri also set MLFLOW_*_URI for child processes)
    leaked = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPLATFORM__")}
    env = {k: v for k, v in env.items() if k not in leaked}
    env |= {"TERM": "dumb", "NO_COLOR": "1", "COLUMNS": "100"}
    # Output to a file, and wait for bash itself: when a step fails, `set -e` ends the shell
    # before its last line stops the background `serve`, which keeps a pipe open (reading to
    # EOF would wait out the whole timeout).
    transcript = tmp_path / "walk.log"
    with transcript.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=900)
        finally:
            _kill_group(proc.pid)
    text = transcript.read_text(errors="replace")
    if path := os.environ.get("MLPLATFORM_WALK_TRANSCRIPT"):
        Path(path).write_text(text)
    assert proc.returncode == 0, text[-4000:]
    assert "\x1b[" not in text, "raw ANSI codes in non-terminal output"
    _check_outcome(tmp_path, env, text)


def _check_outcome(work: Path, env: dict[str, str], text: str) -> None:
    """After the walk the registry tells the story: v2, trained on other data after an
    alert, is the champion."""
    lineage = subprocess.run(
        [str(work / ".venv/bin/mlplatform"), "lineage", "house-price", "--json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    doc = json.loads(lineage.stdout)
    champion = doc["aliases"]["champion"]
    assert str(champion["version"]) == "2", doc
    assert (champion["trigger"] or "").startswith("alert-house-price-"), champion
    first = _v1_data_version(work, doc["tracking_uri"])
    assert champion["data_version"] and first and champion["data_version"] != first, (
        champion,
        first,
    )
    assert "promoted" in text, text[-3000:]
    # each step says what comes next, and the monitor knows the data in place is new
    config = "--config configs/house-price.yaml"
    for hint in (
        f"next: `mlplatform features materialize {config}`, then `mlplatform serve {config}`",
        f"next           `mlplatform retrain {config}` trains on the new data in place",
        f"next: `mlplatform rollout {config}` canaries the challenger",
    ):
        assert hint in text, (hint, text[-4000:])


def _v1_data_version(work: Path, uri: str) -> str:
    """The data md5 recorded on v1, read from the walk's registry with MLflow's own client."""
    from mlflow import MlflowClient

    assert uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"), uri
    db = f"sqlite:///{work / uri.removeprefix('sqlite:///')}"
    client = MlflowClient(tracking_uri=db, registry_uri=db)  # not a registry URI set globally
    return str(client.get_model_version("house-price", "1").tags.get("lineage.data_md5", ""))


def _kill_group(pid: int) -> None:
    """The walk's background `mlplatform serve` (and its servers) go with it: SIGTERM to the
    session's group, then SIGKILL whatever is left after 30 s."""
    deadline = time.monotonic() + 30
    sig = signal.SIGTERM
    while True:
        try:
            os.killpg(pid, sig if sig else 0)
        except ProcessLookupError:
            return
        if sig == signal.SIGKILL:
            sig = 0
        elif time.monotonic() > deadline:
            sig = signal.SIGKILL
        else:
            sig = 0
        time.sleep(0.2)
