"""``python -m mlplatform.serving router``: parse the flags, load the config, run uvicorn.

The flags are this process's wiring (upstream URLs and versions, bind address); every other
setting is in the config's ``serve`` section (``MLPLATFORM__SERVE__<FIELD>`` overrides it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlplatform.errors import PlatformError
from mlplatform.serving.router.app import create_app
from mlplatform.serving.router.settings import RouterSettings


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from mlplatform.config import load_config

    p = argparse.ArgumentParser(description="The canary router (see the module docstring).")
    p.add_argument("--config", type=Path, required=True, help="Platform config YAML.")
    p.add_argument("--stable-url", required=True, help="Champion predictor, http://host:port.")
    p.add_argument("--canary-url", help="Challenger predictor, http://host:port.")
    p.add_argument("--explainer-url", help="Explainer, http://host:port.")
    p.add_argument("--stable-version", help="Registry version served by stable.")
    p.add_argument("--canary-version", help="Registry version served by the canary.")
    p.add_argument("--host", help="Bind address (default: serve.host).")
    p.add_argument("--port", type=int, help="Port (default: serve.router_port).")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except PlatformError as exc:
        raise SystemExit(f"error: {exc}") from None
    wiring = ("stable_url", "canary_url", "explainer_url", "stable_version", "canary_version")
    app = create_app(cfg, RouterSettings(**{k: getattr(args, k) for k in wiring}))
    host, port = args.host or cfg.serve.host, args.port or cfg.serve.router_port
    uvicorn.run(app, host=host, port=port, access_log=False)  # the payload log has every request
