"""EMULATED pods and Services: real processes with a pod's filesystem, names and address.

What a pod gets here, and where it comes from:

* **its own mount namespace** (``unshare --mount``; ``enter.py`` lays it out): the image's
  working directory (:mod:`.image`) read-only at ``/app``, each volume the manifest mounts
  (an emptyDir: a fresh folder per pod; a PVC: one folder shared by every pod that mounts the
  claim; a ConfigMap: its rendered files, read-only), then the root filesystem remounted
  read-only (the chart's ``readOnlyRootFilesystem``);
* **cluster DNS** as a pod's resolver sees it (kubelet's ``/etc/hosts`` and the search path
  ``<ns>.svc.cluster.local svc.cluster.local cluster.local``): a Service answers to its short
  name only inside its own namespace, and to ``<svc>.<ns>``, ``<svc>.<ns>.svc`` and
  ``<svc>.<ns>.svc.cluster.local`` from anywhere. Every name is in the pod's ``/etc/hosts``,
  so C libraries (libpq) resolve them too, and ``/etc/resolv.conf`` points at an address
  where nothing answers, so any other name fails at once instead of reaching the network;
* **an address of its own**, 127.20.x.y: the wildcard bind of a Python server is moved there
  (``shim/sitecustomize.py``), so two pods listen on the same port as rendered;
* **Services** at 127.10.x.y, one per Service: each port forwards to its ``targetPort`` on
  the selected pods (round robin), as kube-proxy does;
* **the container's environment** as the kubelet builds it (:func:`tests.support.chart.
  container_env`) on top of the image's ``ENV`` lines, with this machine's virtualenv first on
  ``PATH`` (the image's Python and packages are the lock's, as here).

Not emulated: users and groups (pods run as this machine's user), resource limits, probes
(a caller waits for a port), restarts (a caller starts the pod again).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENTER = HERE / "enter.py"
SHIM = HERE / "shim"
CLUSTER_DOMAIN = "svc.cluster.local"
#: /etc/resolv.conf of every pod: a loopback address where no resolver listens.
RESOLV_CONF = "nameserver 127.255.255.254\noptions timeout:1 attempts:1\n"


def image_env(dockerfile: Path) -> dict[str, str]:
    """The ``ENV key=value ...`` lines of the Dockerfile (the image's environment)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip().upper().startswith("ENV "):
            for pair in re.findall(r"(\w+)=(\S+)", line):
                env[pair[0]] = pair[1]
    return env


@dataclass(frozen=True)
class Volume:
    """One mount: ``path`` in the container, ``source`` on this machine."""

    path: str
    source: Path
    read_only: bool = False


@dataclass
class ClusterDns:
    """Service and pod addresses, and the ``/etc/hosts`` a pod of each namespace sees."""

    services: dict[tuple[str, str], str] = field(default_factory=dict)
    _service_ips: Iterator[int] = field(default_factory=lambda: _addresses())
    _pod_ips: Iterator[int] = field(default_factory=lambda: _addresses())

    def add_service(self, namespace: str, name: str) -> str:
        if (namespace, name) not in self.services:
            self.services[(namespace, name)] = _address(10, next(self._service_ips))
        return self.services[(namespace, name)]

    def pod_ip(self) -> str:
        return _address(20, next(self._pod_ips))

    def names(self, namespace: str) -> dict[str, str]:
        """Every name a pod in ``namespace`` can resolve → its address."""
        out = {}
        for (ns, svc), ip in self.services.items():
            for name in (f"{svc}.{ns}", f"{svc}.{ns}.svc", f"{svc}.{ns}.{CLUSTER_DOMAIN}"):
                out[name] = ip
            if ns == namespace:
                out[svc] = ip
        return out

    def hosts(self, namespace: str, pod: str, pod_ip: str) -> str:
        lines = ["127.0.0.1\tlocalhost", f"{pod_ip}\t{pod}"]
        lines += [f"{ip}\t{name}" for name, ip in sorted(self.names(namespace).items())]
        return "\n".join(lines) + "\n"


def _addresses() -> Iterator[int]:
    """Address numbers from a random third octet on, so that rehearsals running at once on
    one machine (a test run beside `make rehearse`) never hand out the same address."""
    return itertools.count(random.randrange(1, 200) * 250)


def _address(block: int, n: int) -> str:
    return f"127.{block}.{n // 250}.{n % 250 + 1}"


@dataclass
class Pod:
    """One pod's container: what runs, where, with which volumes."""

    name: str
    namespace: str
    argv: list[str]
    env: dict[str, str]
    volumes: list[Volume]
    image_root: Path
    workdir: str = "/app"
    ip: str = ""
    process: subprocess.Popen[bytes] | None = None

    def start(self, dns: ClusterDns, run_dir: Path, log: Path) -> subprocess.Popen[bytes]:
        """Start the container's command in the pod's own mount namespace."""
        self.ip = self.ip or dns.pod_ip()
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "hosts").write_text(dns.hosts(self.namespace, self.name, self.ip))
        (run_dir / "resolv.conf").write_text(RESOLV_CONF)
        mounts = [Volume("/app", self.image_root, True), *self.volumes]
        mounts += [Volume("/etc/hosts", run_dir / "hosts", True)]
        mounts += [Volume("/etc/resolv.conf", run_dir / "resolv.conf", True)]
        for m in mounts:
            ensure_mount_point(m.path, m.source.is_dir())
        spec = {
            "mounts": [[m.path, str(m.source), m.read_only] for m in mount_order(mounts)],
            "workdir": self.workdir,
            "env": self._environment(),
            "argv": self.argv,
        }
        (run_dir / "spec.json").write_text(json.dumps(spec, indent=1))
        unshare = ["unshare", "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            unshare.insert(1, "--map-root-user")
        cmd = [*unshare, sys.executable, str(ENTER), str(run_dir / "spec.json")]
        with log.open("ab") as out:  # the child keeps its own descriptor
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        return self.process

    def _environment(self) -> dict[str, str]:
        env = dict(self.env)
        venv = str(Path(sys.executable).parent)
        env["PATH"] = f"{venv}:{env.get('PATH', '/usr/local/bin:/usr/bin:/bin')}"
        env["PYTHONPATH"] = str(SHIM)
        env["MLPLATFORM_REHEARSAL_POD_IP"] = self.ip
        return env

    def stop(self, timeout: float = 15) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def mount_order(mounts: list[Volume]) -> list[Volume]:
    """An order in which no mount hides a later mount's source: the pod's ``/tmp`` goes over
    this machine's ``/tmp``, where the other sources (the image copy, volumes) may live."""

    def hides(m: Volume) -> bool:
        return any(o.source.is_relative_to(m.path) for o in mounts if o is not m)

    ordered = sorted(mounts, key=lambda m: (hides(m), len(Path(m.path).parts)))
    for i, m in enumerate(ordered):
        if hides(m) and any(Path(o.path).is_relative_to(m.path) for o in ordered[i + 1 :]):
            raise ValueError(f"mount {m.path} hides sources and has mounts under it")
    return ordered


#: Mount points this module created on this machine (empty folders), removed by
#: :func:`remove_mount_points`.
_CREATED: list[Path] = []


def ensure_mount_point(path: str, directory: bool) -> None:
    target = Path(path)
    if target.exists():
        return
    missing = [p for p in [target, *target.parents] if not p.exists()]
    if directory:
        target.mkdir(parents=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
    _CREATED.extend(missing)


def remove_mount_points() -> None:
    """Remove the empty mount points :func:`ensure_mount_point` created, deepest first."""
    for path in sorted(set(_CREATED), key=lambda p: len(p.parts), reverse=True):
        with suppress(OSError):
            path.rmdir() if path.is_dir() else path.unlink()
    _CREATED.clear()


# -- Services: kube-proxy ------------------------------------------------------------------
@dataclass
class ServicePort:
    ip: str
    port: int
    target_port: int
    backends: list[str]  # pod IPs
    _next: Iterator[int] = field(default_factory=itertools.count)

    def pick(self) -> str:
        if not self.backends:
            raise ConnectionRefusedError(f"no ready pod behind {self.ip}:{self.port}")
        return self.backends[next(self._next) % len(self.backends)]


class KubeProxy:
    """EMULATED kube-proxy: TCP from ``<service ip>:<port>`` to ``<pod ip>:<targetPort>``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ports: list[ServicePort] = []
        self._servers: list[asyncio.base_events.Server] = []

    def add(self, port: ServicePort) -> ServicePort:
        future = asyncio.run_coroutine_threadsafe(self._listen(port), self.loop)
        self._servers.append(future.result(10))
        self.ports.append(port)
        return port

    async def _listen(self, port: ServicePort) -> asyncio.base_events.Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection(port.pick(), port.target_port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

        return await asyncio.start_server(handle, port.ip, port.port)

    def close(self) -> None:
        for server in self._servers:
            self.loop.call_soon_threadsafe(server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@contextmanager
def kube_proxy() -> Iterator[KubeProxy]:
    proxy = KubeProxy()
    try:
        yield proxy
    finally:
        proxy.close()
