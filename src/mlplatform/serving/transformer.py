"""The transformer: entity ids → feature rows from the Feast online store, then the predictor.

    python -m mlplatform.serving transformer --config configs/house-price.yaml \\
        --model_name house-price --predictor_host 127.0.0.1:8080 --http_port 8083

Training and serving share one set of feature definitions (the Michelangelo pattern): the
rows the model sees online come from the same feature views it was trained on. Raw feature
rows pass through unchanged; an unknown entity id is a 400 naming the id. A feature store
that cannot be opened (missing or invalid repo), an online store never materialized (the 503
names the command to run) or one that is down or slow is a 503 with the reason: the
transformer still starts, answers raw rows, and says why ids fail.

The answer carries the router's ``x-request-id`` (with ``x-model-version`` and
``x-mlplatform-variant``), so a client of the transformer can post feedback for it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from kserve import Model

from mlplatform.config import PlatformConfig
from mlplatform.errors import FeatureRepoError, PlatformError
from mlplatform.serving.inputs import Lookup, as_json, check_count, entity_ids
from mlplatform.serving.process import base_parser, load_platform_config, serve

logger = logging.getLogger("mlplatform.serving")
#: Headers of the router's answer the transformer passes back to its client.
PASSED_BACK = ("x-request-id", "x-model-version", "x-mlplatform-variant")


class Transformer(Model):  # type: ignore[misc]
    def __init__(
        self,
        cfg: PlatformConfig,
        name: str,
        lookup: Lookup | None = None,
        config_path: Path | None = None,
    ) -> None:
        super().__init__(name, return_response_headers=True)
        self.cfg, self.config_path = cfg, config_path
        self._lookup = lookup
        self._store_error = "not opened"

    def load(self) -> bool:
        if self._lookup is None:
            from mlplatform.serving.features import online_lookup

            try:
                self._lookup = online_lookup(self.cfg, self.config_path)
            except PlatformError as exc:  # answered as a 503 on each request that needs it
                self._store_error = str(exc)
                logger.error("transformer %s: %s", self.name, exc)
        self.ready = True
        return True

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """v1 bodies of entity ids become feature rows; everything else passes through."""
        payload = as_json(payload)
        if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
            return payload
        rows = payload["instances"]
        check_count(len(rows), self.cfg.serve.max_instances)
        ids = entity_ids(rows, self.cfg.entity)
        if ids is None:
            return payload
        if self._lookup is None:
            raise FeatureRepoError(f"entity ids need the feature store: {self._store_error}")
        frame = self._lookup(ids)  # unknown ids: 400; online store down or slow: 503
        return {"instances": frame[list(self.cfg.feature_names)].values.tolist()}

    async def predict(
        self,
        payload: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> Any:
        """The predictor's (router's) answer, with its request id and version headers."""
        upstream: dict[str, str] = {}
        result = await super().predict(payload, headers, upstream)
        if response_headers is not None:
            response_headers.update({k: v for k in PASSED_BACK if (v := upstream.get(k))})
        return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(parents=[base_parser()], description=__doc__)
    args, _ = parser.parse_known_args(argv)
    cfg = load_platform_config(args.config)
    model = Transformer(cfg, args.model_name or cfg.model_name, config_path=args.config)
    model.load()
    serve([model], args.http_port, cfg.serve.max_body_bytes, args.predictor_host)
