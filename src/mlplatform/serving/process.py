"""Shared start-up of the KServe model servers: arguments, config, ``ModelServer``.

Argument names follow KServe's (``--model_name``, ``--http_port``, ``--predictor_host``) so
the same command runs locally and in an InferenceService, where KServe injects them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mlplatform.config import PlatformConfig, load_config
from mlplatform.errors import PlatformError


def base_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    # Not "--config": KServe parses sys.argv at import, where it would abbreviate
    # "--configure_logging".
    parser.add_argument("--platform_config", type=Path, required=True, help="Platform config YAML.")
    parser.add_argument("--model_name", default=None, help="Served name (default: config's).")
    parser.add_argument("--http_port", type=int, default=8080, help="HTTP port.")
    parser.add_argument("--predictor_host", default=None, help="host:port of the predictor.")
    return parser


def load_platform_config(path: Path) -> PlatformConfig:
    """The config, or a one-line error and exit code 2 (no traceback at start-up)."""
    try:
        return load_config(path)
    except PlatformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def quiet_request_logs() -> None:
    """One log line per request costs more than the prediction; keep warnings and errors.

    Set MLPLATFORM_ACCESS_LOG=1 to get KServe's per-request trace and uvicorn's access log back.
    """
    import logging
    import os

    if os.environ.get("MLPLATFORM_ACCESS_LOG") == "1":
        return
    for name in ("kserve.trace", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


def serve(models: list[Any], port: int, predictor_host: str | None = None) -> None:
    """Run KServe's ModelServer (REST only) with these models until SIGINT/SIGTERM."""
    from kserve import ModelServer
    from kserve.model import PredictorConfig

    config = PredictorConfig(predictor_host=predictor_host) if predictor_host else None
    quiet_request_logs()
    ModelServer(
        http_port=port,
        enable_grpc=False,
        workers=1,
        predictor_config=config,
        enable_latency_logging=False,
    ).start(models)
