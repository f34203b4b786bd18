"""``mlplatform serve``: the whole local serving stack as child processes on loopback.

    router :8080  →  stable predictor (champion) :8081      (admin API :8090, loopback)
                  →  canary predictor (challenger) :8082   (when the challenger differs)
    transformer :8083 (entity ids → Feast online features → router)
    explainer   :8084 (LIME/Anchor, calling the stable predictor over HTTP)

Children die with the parent (Linux ``PR_SET_PDEATHSIG``), and :meth:`LocalStack.stop`
terminates them in reverse order, so Ctrl-C leaves no orphan processes. A challenger registered
after the start gets a canary predictor through :meth:`LocalStack.replace` (see
:mod:`mlplatform.serving.challenger_watch`). The servers get the
feedback and admin tokens of :func:`~mlplatform.serving.tokens.local_tokens` (the environment's,
else ``<artifacts_dir>/tokens.json``), so feedback and the admin API are never open.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from mlplatform.config import PlatformConfig
from mlplatform.errors import StackError
from mlplatform.serving.tokens import Tokens, local_tokens


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    args: tuple[str, ...]
    health: str = "/v2/health/ready"


@dataclass
class LocalStack:
    """Start, check and stop the local servers for one model."""

    cfg: PlatformConfig
    config_path: Path
    canary: bool = True
    log_dir: Path = Path("artifacts/logs")
    versions: tuple[str | None, str | None] = (None, None)  # (stable, canary) registry versions
    upstreams: tuple[str, ...] = ()  # more predictors the admin API may attach as the canary
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)  # service name → its port
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)

    def url(self, port: int) -> str:
        return f"http://{self.cfg.serve.host}:{port}"

    def admin_url(self) -> str:
        """The router's admin port (:class:`~mlplatform.serving.traffic.LocalRouterBackend`)."""
        return f"http://127.0.0.1:{self.cfg.serve.router_admin_port}"

    @property
    def tokens(self) -> Tokens:
        """The feedback and admin tokens the servers of this stack hold."""
        return local_tokens(self.cfg.artifacts_dir)

    def predictor(self, name: str, port: int, alias: str, version: str | None = None) -> Service:
        """A predictor on ``port`` serving ``alias`` (resolved at its start), or ``version``."""
        model = ("--model_version", version) if version else ("--alias", alias)
        cfg, model_name = str(self.config_path), self.cfg.model_name
        args = ("--config", cfg, "--model_name", model_name, *model, "--http_port", str(port))
        return Service(name, port, ("mlplatform.serving", "predictor", *args))

    def services(self) -> list[Service]:
        s, name, cfg = self.cfg.serve, self.cfg.model_name, str(self.config_path)
        common = ("--config", cfg, "--model_name", name)
        out = [self.predictor("stable", s.stable_port, "champion")]
        if self.canary:
            out.append(self.predictor("canary", s.canary_port, "challenger"))
        router = [
            "mlplatform.serving",
            "router",
            "--config",
            cfg,
            "--port",
            str(s.router_port),
            "--admin-port",
            str(s.router_admin_port),
            *(f"--upstream={u}" for u in (self.url(s.canary_port), *self.upstreams)),
            "--stable-url",
            self.url(s.stable_port),
            "--explainer-url",
            self.url(s.explainer_port),
        ]
        if self.canary:
            router += ["--canary-url", self.url(s.canary_port)]
        for flag, version in zip(
            ("--stable-version", "--canary-version"), self.versions, strict=True
        ):
            if version:
                router += [flag, version]
        out.append(Service("router", s.router_port, tuple(router), "/healthz"))
        out.append(
            Service(
                "transformer",
                s.transformer_port,
                (
                    "mlplatform.serving",
                    "transformer",
                    *common,
                    "--predictor_host",
                    f"{s.host}:{s.router_port}",
                    "--http_port",
                    str(s.transformer_port),
                ),
            )
        )
        out.append(
            Service(
                "explainer",
                s.explainer_port,
                (
                    "mlplatform.serving",
                    "explainer",
                    *common,
                    "--predictor_host",
                    f"{s.host}:{s.stable_port}",
                    "--http_port",
                    str(s.explainer_port),
                ),
            )
        )
        return out

    def start(self, timeout: float = 90) -> list[Service]:
        self._closed = False
        self.log_dir.mkdir(parents=True, exist_ok=True)
        services = self.services()
        try:
            for svc in services:
                self._spawn(svc)
                self._wait_ready(svc, timeout)
        except BaseException:
            self.stop()
            raise
        return services

    def add(self, svc: Service, timeout: float = 90) -> None:
        """Start one more server (e.g. a new canary) and wait until it is ready."""
        self._spawn(svc)
        self._wait_ready(svc, timeout)

    def replace(self, svc: Service, timeout: float = 90) -> None:
        """Stop the server on ``svc.port`` (a retired predictor), then :meth:`add` ``svc``."""
        with self._lock:
            old = [n for n, port in self.ports.items() if port == svc.port and n in self.procs]
            procs = [self.procs.pop(n) for n in old]
        for proc in procs:
            _terminate(proc, 10)
        self.add(svc, timeout)

    def _spawn(self, svc: Service) -> None:
        with self._lock:
            if self._closed:
                raise StackError(f"{svc.name} not started: the stack is stopping")
            log = (self.log_dir / f"{self.cfg.model_name}-{svc.name}.log").open("wb")
            self.procs[svc.name] = subprocess.Popen(
                [sys.executable, "-m", *svc.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                env={**os.environ, **self.tokens.env(), "PYTHONUNBUFFERED": "1"},
            )
            self.ports[svc.name] = svc.port

    def _wait_ready(self, svc: Service, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = self.url(svc.port) + svc.health
        while time.monotonic() < deadline:
            proc = self.procs.get(svc.name)
            if proc is None:
                raise StackError(f"{svc.name} not ready: the stack is stopping")
            if proc.poll() is not None:
                raise StackError(
                    f"{svc.name} exited with code {proc.returncode}: {self._tail(svc)}"
                )
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise StackError(f"{svc.name} not ready on {url} after {timeout:.0f} s: {self._tail(svc)}")

    def _tail(self, svc: Service) -> str:
        path = self.log_dir / f"{self.cfg.model_name}-{svc.name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return " | ".join(lines[-5:])

    def stop(self, grace: float = 10) -> None:
        """SIGTERM in reverse start order, then SIGKILL whatever is still alive."""
        with self._lock:
            self._closed = True
            procs = list(self.procs.values())
            self.procs.clear()
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + grace
        for proc in procs:
            _wait_or_kill(proc, max(0.1, deadline - time.monotonic()))

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM ``proc`` and wait ``grace`` seconds, then SIGKILL it."""
    if proc.poll() is None:
        proc.terminate()
    _wait_or_kill(proc, grace)


def _wait_or_kill(proc: subprocess.Popen[bytes], grace: float) -> None:
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _die_with_parent() -> None:
    """In the child: receive SIGTERM when the parent dies (Linux), so nothing is orphaned."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def registry_versions(
    cfg: PlatformConfig, config_path: Path | str = "..."
) -> tuple[str, str | None]:
    """(champion version, challenger version if it differs from the champion); without a
    champion a :class:`StackError` naming the command that registers one."""
    from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry

    reg = Registry(cfg.registry)
    champ, chall = reg.by_alias(cfg.model_name, CHAMPION), reg.by_alias(cfg.model_name, CHALLENGER)
    if champ is None:
        raise StackError(
            f"{cfg.model_name} has no champion in {cfg.registry.tracking_uri}: "
            f"run `mlplatform pipeline run --config {config_path}` first"
        )
    return champ.version, chall.version if chall and chall.version != champ.version else None
