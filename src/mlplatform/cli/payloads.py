"""Commands on the payload log: ``mlplatform payloads prune``."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from mlplatform.cli.base import ConfigOpt, app, console, friendly
from mlplatform.config import load_config

payloads_app = typer.Typer(help="The payload log (serve.payload_store).", no_args_is_help=True)
app.add_typer(payloads_app, name="payloads")


@payloads_app.command("prune")
@friendly
def payloads_prune(config: ConfigOpt = Path("configs/house-price.yaml")) -> None:
    """Delete the model's requests (and their labels) older than serve.payload_retention_days
    and beyond serve.payload_max_rows; never within the monitor's window and lag."""
    from mlplatform.serving.payloads import PayloadStore

    cfg = load_config(config)
    s, m = cfg.serve, cfg.monitor
    with PayloadStore(s.payload_store) as store:
        result = store.prune(
            cfg.model_name,
            time.time(),
            s.payload_retention_days,
            s.payload_max_rows,
            keep_seconds=m.window_seconds + m.window_lag_seconds,
        )
    before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(result.cutoff or 0))
    console.print(
        f"{cfg.model_name}: pruned {result.requests} requests and {result.labels} labels "
        f"logged before {before}"
    )
