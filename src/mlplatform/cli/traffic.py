"""``mlplatform traffic``: client traffic for a local ``mlplatform serve``, with ground truth.

Rows come from the test split of a data file (the model's own by default); each is one
single-row prediction through the router, and, with ``--labels``, its true value is posted as
feedback under the id the router issued, as a real client would once the truth is known.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlplatform.cli.base import ConfigOpt, app, console, friendly
from mlplatform.config import load_config
from mlplatform.errors import DataError, UpstreamError

if TYPE_CHECKING:
    from mlplatform.config import PlatformConfig
    from mlplatform.demo.clients import Clients

BATCH = 20  # requests between two looks at the clock / progress lines


@app.command()
@friendly
def traffic(
    config: ConfigOpt = Path("configs/house-price.yaml"),
    requests: Annotated[
        int, typer.Option("--requests", "-n", min=1, help="How many predictions to send.")
    ] = 200,
    seconds: Annotated[
        float | None,
        typer.Option(min=0.1, help="Keep sending for this long instead (e.g. during a rollout)."),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Parquet file to draw rows from (default: data.data_dir).")
    ] = None,
    labels: Annotated[
        bool, typer.Option("--labels/--no-labels", help="Post each row's true value as feedback.")
    ] = True,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for `mlplatform serve` to be ready.")
    ] = 120,
) -> None:
    """Send predictions (and their true labels) to the router of `mlplatform serve`."""
    import pandas as pd

    from mlplatform.core.training import split_frame
    from mlplatform.demo.clients import Clients
    from mlplatform.serving.tokens import local_tokens

    cfg = load_config(config)
    source = data or cfg.data_path
    if not source.exists():
        raise DataError(f"no data at {source}: run `mlplatform data --config {config}` first")
    rows = split_frame(cfg, pd.read_parquet(source)).test
    url = f"http://{cfg.serve.host}:{cfg.serve.router_port}"
    token = local_tokens(cfg.artifacts_dir).feedback
    clients = Clients(url, cfg.model_name, rows, cfg.feature_names, cfg.target, token)
    _wait_for_stack(cfg, config, wait)
    _send(clients, requests, seconds, labels)
    failed = len(clients.failures)
    console.print(
        f"sent {clients.sent} predictions to {url} ({failed} failed)"
        + (f", with their labels, from {source}" if labels else f", from {source}")
    )
    if failed:
        console.print(f"first failure: {clients.failures[0]}", markup=False)
        raise typer.Exit(1)


def _wait_for_stack(cfg: PlatformConfig, config: Path, seconds: float) -> None:
    """Until the router, transformer and explainer of `mlplatform serve` answer ready."""
    import httpx

    s = cfg.serve
    urls = [
        f"http://{s.host}:{s.router_port}/healthz",
        *(f"http://{s.host}:{p}/v2/health/ready" for p in (s.transformer_port, s.explainer_port)),
    ]
    deadline, told = time.monotonic() + seconds, False
    while urls:
        try:
            if httpx.get(urls[0], timeout=2).status_code == 200:
                urls.pop(0)
                continue
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            raise UpstreamError(
                f"no answer from {urls[0]} after {seconds:.0f} s: "
                f"start `mlplatform serve --config {config}` first"
            )
        if not told:
            console.print(f"waiting for `mlplatform serve` ({urls[0]}) ...")
            told = True
        time.sleep(0.5)


def _send(clients: Clients, requests: int, seconds: float | None, labels: bool) -> None:
    import httpx

    deadline = time.monotonic() + seconds if seconds is not None else None
    last = time.monotonic()
    try:
        while (clients.sent < requests) if deadline is None else (time.monotonic() < deadline):
            n = BATCH if deadline is not None else min(BATCH, requests - clients.sent)
            clients.send(n, feedback=labels)
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                console.print(f"  {clients.sent} sent, {len(clients.failures)} failed ...")
    except httpx.TransportError as exc:
        raise UpstreamError(
            f"the router at {clients.url} does not answer ({exc}): is `mlplatform serve` running?"
        ) from None
