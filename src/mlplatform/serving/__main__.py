"""``python -m mlplatform.serving <server> --config PATH [flags]``: start one server.

    python -m mlplatform.serving predictor --config configs/house-price.yaml \\
        --model_name house-price --alias champion --http_port 8081
    python -m mlplatform.serving router --config configs/house-price.yaml \\
        --stable-url http://127.0.0.1:8081

Servers: ``predictor``, ``transformer``, ``explainer`` (KServe model servers), ``router``
(the local canary router) and ``sink`` (the cluster's payload sink); ``<server> --help``
lists each one's flags. Every other setting is in the config.

One entry point because KServe parses ``sys.argv`` when it is imported: the KServe servers
import it at module level, so ``python -m mlplatform.serving.predictor --config ...`` would
fail before its ``main()`` runs (KServe reads ``--config`` as its ``--configure_logging``).
Here nothing imports KServe before ``sys.argv`` holds only :func:`.process.kserve_argv`;
the server's ``main()`` gets every flag.
"""

from __future__ import annotations

import importlib
import sys

from mlplatform.serving.process import kserve_argv

SERVERS = ("predictor", "transformer", "explainer", "router", "sink")
PROG = "python -m mlplatform.serving"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in SERVERS:
        got = repr(args[0]) if args else "nothing"
        print(f"usage: {PROG} {{{','.join(SERVERS)}}} --config PATH ...", file=sys.stderr)
        print(f"error: expected a server name, got {got}", file=sys.stderr)
        raise SystemExit(2)
    server, flags = args[0], args[1:]
    sys.argv = [f"{PROG} {server}", *kserve_argv(flags)]  # argv[0]: the servers' usage line
    importlib.import_module(f"mlplatform.serving.{server}").main(flags)


if __name__ == "__main__":
    main()
