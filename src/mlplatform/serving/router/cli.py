"""``python -m mlplatform.serving router``: parse the flags, load the config, run uvicorn on the
client port and on the admin port (one event loop, one :class:`CanaryRouter`).

The flags are this process's wiring (upstream URLs and versions, bind addresses); every other
setting is in the config's ``serve`` section (``MLPLATFORM__SERVE__<FIELD>`` overrides it). The
tokens come from the environment (:mod:`mlplatform.serving.tokens`): without
``MLPLATFORM_FEEDBACK_TOKEN`` feedback is closed, without ``MLPLATFORM_ADMIN_TOKEN`` the admin
API and variant pins are.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from mlplatform.errors import PlatformError
from mlplatform.serving.router.app import create_admin_app, create_app
from mlplatform.serving.router.settings import RouterSettings
from mlplatform.serving.tokens import ADMIN_TOKEN_ENV, FEEDBACK_TOKEN_ENV, env_token

WIRING = ("stable_url", "canary_url", "explainer_url", "stable_version", "canary_version")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="The canary router (see the module docstring).")
    p.add_argument("--config", type=Path, required=True, help="Platform config YAML.")
    p.add_argument("--stable-url", required=True, help="Champion predictor, http://host:port.")
    p.add_argument("--canary-url", help="Challenger predictor, http://host:port.")
    p.add_argument("--explainer-url", help="Explainer, http://host:port.")
    p.add_argument("--stable-version", help="Registry version served by stable.")
    p.add_argument("--canary-version", help="Registry version served by the canary.")
    p.add_argument(
        "--upstream",
        action="append",
        default=[],
        help="Another predictor PUT /admin/canary may attach (repeatable).",
    )
    p.add_argument("--host", help="Bind address (default: serve.host).")
    p.add_argument("--port", type=int, help="Port (default: serve.router_port).")
    p.add_argument("--admin-host", default="127.0.0.1", help="Admin API bind address.")
    p.add_argument("--admin-port", type=int, help="Admin port (default: serve.router_admin_port).")
    return p


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from mlplatform.config import load_config

    args = parser().parse_args(argv)
    try:
        cfg = load_config(args.config)
    except PlatformError as exc:
        raise SystemExit(f"error: {exc}") from None
    settings = RouterSettings(
        **{k: getattr(args, k) for k in WIRING},
        upstreams=tuple(args.upstream),
        feedback_token=env_token(FEEDBACK_TOKEN_ENV),
        admin_token=env_token(ADMIN_TOKEN_ENV),
    )
    app = create_app(cfg, settings)
    host, port = args.host or cfg.serve.host, args.port or cfg.serve.router_port
    admin_port = args.admin_port or cfg.serve.router_admin_port
    servers = [  # no access log: the payload log has every request
        uvicorn.Server(uvicorn.Config(app, host=host, port=port, access_log=False)),
        uvicorn.Server(
            uvicorn.Config(
                create_admin_app(app.state.router),
                host=args.admin_host,
                port=admin_port,
                access_log=False,
                lifespan="off",
            )
        ),
    ]
    asyncio.run(serve_all(servers))


async def serve_all(servers: list[Any]) -> None:
    """Run uvicorn ``servers`` in this loop until one stops (a signal reaches one of them),
    then stop the others."""

    async def watch() -> None:
        while not any(s.should_exit for s in servers):
            await asyncio.sleep(0.2)
        for s in servers:
            s.should_exit = True

    await asyncio.gather(*(s.serve() for s in servers), watch())
