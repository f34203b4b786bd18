"""Shared start-up of the KServe model servers: arguments, config, ``ModelServer``.

Argument names follow KServe's (``--model_name``, ``--http_port``, ``--predictor_host``) so
the same command runs locally and in an InferenceService, where KServe injects them. The
servers start through ``python -m mlplatform.serving <server> --config PATH`` (see
:mod:`mlplatform.serving.__main__`), which hands KServe's import-time parser
:func:`kserve_argv` only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mlplatform.config import PlatformConfig, load_config
from mlplatform.errors import PlatformError


def base_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--config", type=Path, required=True, help="Platform config YAML.")
    parser.add_argument("--model_name", default=None, help="Served name (default: config's).")
    parser.add_argument("--http_port", type=int, default=8080, help="HTTP port.")
    parser.add_argument("--predictor_host", default=None, help="host:port of the predictor.")
    return parser


def kserve_argv(argv: list[str]) -> list[str]:
    """``argv`` without our own ``--config PATH``, for KServe's parser.

    KServe parses ``sys.argv`` when it is imported (``kserve.model_server``), with argparse
    abbreviations allowed: it would read ``--config`` as its ``--configure_logging`` and exit.
    Flags both know (``--model_name``, ``--http_port``, ``--predictor_host``) and KServe's own
    (``--log_config_file``, ...) are kept; flags only we define are ignored by its parser.

    >>> kserve_argv(["--config", "c.yaml", "--http_port", "8081", "--configure_logging=false"])
    ['--http_port', '8081', '--configure_logging=false']
    """
    own = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    own.add_argument("--config")
    return own.parse_known_args(argv)[1]


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


def serve(
    models: list[Any], port: int, max_body_bytes: int, predictor_host: str | None = None
) -> None:
    """Run KServe's ModelServer (REST only) with these models until SIGINT/SIGTERM, request
    bodies capped at ``max_body_bytes`` (``serve.max_body_bytes``: 413 above)."""
    from kserve import ModelServer, model_server
    from kserve.model import PredictorConfig

    from mlplatform.serving import body_limit, error_handler, oip

    config = PredictorConfig(predictor_host=predictor_host) if predictor_host else None
    quiet_request_logs()
    error_handler.install()  # platform errors → their HTTP status, on KServe's app
    body_limit.install(model_server.app, max_body_bytes)
    oip.install(model_server.app)  # tritonclient's JSON mode, curl -d
    ModelServer(
        http_port=port,
        enable_grpc=False,
        workers=1,
        predictor_config=config,
        enable_latency_logging=False,
    ).start(models)
