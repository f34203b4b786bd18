"""``python -m mlplatform.serving <server> --config PATH``: every server takes ``--config``,
although KServe parses ``sys.argv`` at import, where ``--config`` abbreviates its
``--configure_logging``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlplatform.serving.__main__ import SERVERS
from mlplatform.serving.process import base_parser, kserve_argv

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs/house-price.yaml")


def test_kserve_gets_every_flag_but_our_config() -> None:
    argv = ["--config", CONFIG, "--model_name", "m", "--alias", "champion", "--http_port", "8081"]
    assert kserve_argv(argv) == argv[2:]
    assert kserve_argv([f"--config={CONFIG}", "--configure_logging", "false"]) == [
        "--configure_logging",
        "false",
    ]
    assert base_parser().parse_known_args(argv)[0].config == Path(CONFIG)


@pytest.mark.parametrize("server", SERVERS)
def test_every_server_takes_config(server: str) -> None:
    """The module imports (KServe included) with ``--config`` on the command line."""
    proc = subprocess.run(
        [sys.executable, "-m", "mlplatform.serving", server, "--config", CONFIG, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"python -m mlplatform.serving {server}" in proc.stdout
    assert "--config" in proc.stdout


def test_unknown_server_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlplatform.serving", "predicter", "--config", CONFIG],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "expected a server name, got 'predicter'" in proc.stderr
