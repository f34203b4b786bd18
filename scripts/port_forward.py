"""``kubectl port-forward`` to one Service for the duration of a block, on a free local port.

Shared by the scripts that talk to a service inside the cluster from this machine
(``kfp_pipeline.py``: the KFP API; ``serving_versions.py``: the release's MLflow).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"kubectl port-forward exited with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.5)
    raise SystemExit(f"kubectl port-forward: port {port} not open after {seconds:.0f}s")


@contextlib.contextmanager
def forward(
    kubectl: str, context: str, namespace: str, service: str, port: int, local: int | None = None
) -> Iterator[str]:
    """``http://127.0.0.1:<local>`` forwarded to ``svc/<service>:<port>`` in ``namespace``."""
    local = local or free_port()
    cmd = [kubectl, "--context", context, "-n", namespace, "port-forward"]
    cmd += [f"svc/{service}", f"{local}:{port}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(local, proc)
        yield f"http://127.0.0.1:{local}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
