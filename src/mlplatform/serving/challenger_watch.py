"""``mlplatform serve`` follows the registry: a challenger registered after the stack started
gets a canary predictor, attached at 0 % through the router's admin API, so ``mlplatform
rollout`` finds it without a restart of ``serve``.

Each check (every ``interval`` seconds) looks for a challenger that is not the champion and not
rolled back. If the router's canary does not serve it yet, and no rollout is moving traffic to
the canary, a predictor pinned to that version (``--model_version``) starts on the predictor
port stable does not use (``serve.canary_port``, or ``serve.stable_port`` after a promotion),
replacing the retired predictor there, and is attached with 0 % of the traffic. A version that
fails to start is reported once and not tried again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from mlplatform.errors import UpstreamError
from mlplatform.serving.router.settings import same_url
from mlplatform.serving.stack import LocalStack
from mlplatform.serving.tokens import bearer
from mlplatform.serving.traffic import LocalRouterBackend

if TYPE_CHECKING:
    from mlplatform.registry.mlflow_registry import Registry


@dataclass
class ChallengerWatch:
    """Deploys the registry's new challengers as the canary of a running :class:`LocalStack`."""

    stack: LocalStack
    config_path: Path
    say: Callable[[str], None] = print
    _failed: set[str] = field(default_factory=set, init=False)
    _registry: Registry | None = field(default=None, init=False)

    def check(self) -> str | None:
        """Deploy the pending challenger unless the canary serves it; the version deployed."""
        version = self._pending()
        if version is None or version in self._failed:
            return None
        state = self._router_state()
        canary = state.get("canary") or {}
        if canary.get("version") == version or (canary and state.get("canary_percent")):
            return None  # deployed already, or a rollout is stepping the current canary
        port = self._free_port(str(state["stable"]["url"]))
        try:
            self.stack.replace(self.stack.predictor(f"canary-v{version}", port, "", version))
        except Exception:
            self._failed.add(version)
            raise
        url, admin = self.stack.url(port), self.stack.tokens.admin
        LocalRouterBackend(self.stack.admin_url(), token=admin).attach(url, version, 0)
        name = self.stack.cfg.model_name
        self.say(
            f"{name}: challenger v{version} registered: canary predictor on {url}, attached at "
            f"0 % of traffic; step it up with `mlplatform rollout --config {self.config_path}`"
        )
        return version

    def run(self, interval: float, stop: threading.Event) -> None:
        """:meth:`check` every ``interval`` seconds until ``stop``; errors are printed once."""
        last = ""
        while not stop.wait(interval):
            try:
                self.check()
                last = ""
            except Exception as exc:
                if not stop.is_set() and str(exc) != last:
                    self.say(
                        f"note: {self.stack.cfg.model_name}: new challenger not deployed: {exc}"
                    )
                last = str(exc)

    def _pending(self) -> str | None:
        from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry

        if self._registry is None:
            self._registry = Registry(self.stack.cfg.registry)
        name = self.stack.cfg.model_name
        chall = self._registry.by_alias(name, CHALLENGER)
        champ = self._registry.by_alias(name, CHAMPION)
        if chall is None or "rollback.at" in chall.tags:
            return None
        return None if champ is not None and champ.version == chall.version else chall.version

    def _router_state(self) -> dict[str, Any]:
        url = self.stack.admin_url() + "/admin/stats"
        try:
            resp = httpx.get(url, headers=bearer(self.stack.tokens.admin), timeout=10)
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            raise UpstreamError(f"router admin API {url}: {exc}") from None
        doc: dict[str, Any] = resp.json()
        return doc

    def _free_port(self, stable_url: str) -> int:
        """The predictor port the stable variant does not use."""
        s = self.stack.cfg.serve
        ports = [
            p
            for p in (s.canary_port, s.stable_port)
            if same_url(self.stack.url(p)) != same_url(stable_url)
        ]
        return ports[0]


def watch_in_background(
    stack: LocalStack, config_path: Path, interval: float, say: Callable[[str], None]
) -> tuple[threading.Event, threading.Thread]:
    """Run a :class:`ChallengerWatch` in a daemon thread; set the event to stop it."""
    stop = threading.Event()
    watcher = ChallengerWatch(stack, config_path, say)
    thread = threading.Thread(target=watcher.run, args=(interval, stop), daemon=True)
    thread.start()
    return stop, thread
