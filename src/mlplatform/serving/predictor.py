"""The predictor: a model version from MLflow behind KServe's v1 and v2 protocols.

    python -m mlplatform.serving predictor --config configs/house-price.yaml \\
        --model_name house-price --alias champion --http_port 8081
    python -m mlplatform.serving predictor --config configs/house-price.yaml \\
        --model_name house-price --model_version 3 --http_port 8081

``--alias`` is resolved once, when the pod starts (handy on a laptop); the chart pins
``--model_version`` instead, because an alias moves or disappears (promotion deletes
``challenger``) while a revision's pods keep starting later (autoscaling, restarts, drains).
"""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from kserve import Model
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from mlplatform.config import PlatformConfig
from mlplatform.core.model import LinearModel
from mlplatform.errors import FeatureRepoError, ModelNotLoadedError, PlatformError
from mlplatform.serving.inputs import Lookup, encode, v1_frame, v2_frame
from mlplatform.serving.process import base_parser, load_platform_config, serve


class Predictor(Model):  # type: ignore[misc]
    """Loads the model in ``load()``; predicts raw rows (or entity ids via the feature store)."""

    def __init__(
        self,
        cfg: PlatformConfig,
        name: str,
        alias: str,
        model: LinearModel | None = None,
        pinned: str | None = None,
    ) -> None:
        super().__init__(name, return_response_headers=True)
        self.cfg, self.alias, self.pinned = cfg, alias, pinned
        self.model = model
        self.version = "local" if model is not None else ""
        self._lookup: Lookup | None = None
        self._store_error = "not opened"
        if model is not None:
            self.ready = True

    def load(self) -> bool:
        from mlplatform.registry.mlflow_registry import Registry

        reg = Registry(self.cfg.registry)
        if self.pinned is not None:
            self.model, self.version = reg.load_version(self.name, self.pinned), self.pinned
        else:
            info = reg.holder(self.name, self.alias)
            self.model, self.version = reg.load(self.name, self.alias), info.version
        self._open_feature_store()
        self.ready = True
        return True

    def _open_feature_store(self) -> None:
        """Open the online store now (not on the first request); raw rows work without it."""
        from mlplatform.serving.features import online_lookup

        try:
            self._lookup = online_lookup(self.cfg)
        except PlatformError as exc:
            self._store_error = str(exc)

    def lookup(self) -> Lookup:
        """Entity ids → feature rows from the Feast online store."""
        if self._lookup is None:
            raise FeatureRepoError(f"entity ids need the feature store: {self._store_error}")
        return self._lookup

    def _model(self) -> LinearModel:
        if self.model is None:
            raise ModelNotLoadedError(f"model {self.name!r} is not loaded")
        return self.model

    async def predict(
        self,
        payload: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        model = self._model()
        if response_headers is not None:
            response_headers["x-model-version"] = self.version
        limit = self.cfg.serve.max_instances
        if isinstance(payload, InferRequest):
            encoded = encode(model, v2_frame(payload, model, limit))
            return self._v2_response(payload, model.predict_encoded(encoded))
        frame = v1_frame(payload, model, self.cfg.entity, limit, self._lazy_lookup)
        return {
            "predictions": model.predict_encoded(encode(model, frame)).tolist(),
            "model_name": self.name,
            "model_version": self.version,
        }

    def _lazy_lookup(self, ids: list[int]) -> pd.DataFrame:
        return self.lookup()(ids)

    def _v2_response(self, request: InferRequest, preds: np.ndarray) -> InferResponse:
        out = InferOutput("predictions", shape=[len(preds)], datatype="FP64")
        out.set_data_from_numpy(preds.astype(np.float64), binary_data=False)
        return InferResponse(
            model_name=self.name,
            model_version=self.version,
            infer_outputs=[out],
            response_id=request.id or str(uuid.uuid4()),
        )

    def get_input_types(self) -> list[dict[str, Any]]:
        model = self._model()
        cats = set(model.scaler.categorical)
        return [
            {"name": n, "datatype": "BYTES" if n in cats else "FP64", "shape": [-1]}
            for n in model.feature_names
        ]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]


def parser() -> argparse.ArgumentParser:
    """The predictor's flags: the servers' common ones, the alias or pinned version, a file."""
    p = argparse.ArgumentParser(parents=[base_parser()], description=__doc__)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--alias", default="champion", help="Registry alias to serve.")
    which.add_argument("--model_version", default=None, help="Registry version to serve.")
    p.add_argument("--model_file", default=None, help="Serve this model.json, no registry.")
    return p


def main(argv: list[str] | None = None) -> None:
    args, _ = parser().parse_known_args(argv)
    cfg = load_platform_config(args.config)
    name = args.model_name or cfg.model_name
    if args.model_file:
        model = Predictor(cfg, name, args.alias, LinearModel.load(Path(args.model_file)))
    else:
        model = Predictor(cfg, name, args.alias, pinned=args.model_version)
        model.load()
    serve([model], args.http_port, cfg.serve.max_body_bytes)
