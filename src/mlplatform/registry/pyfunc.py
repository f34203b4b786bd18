"""The MLflow pyfunc flavour of a :class:`LinearModel` (``mlflow.pyfunc.load_model`` works)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from mlplatform.core.model import LinearModel


class LinearPyfunc(PythonModel):
    """Loads ``model.json`` from the logged artifacts; predicts on a DataFrame of raw features."""

    def load_context(self, context: Any) -> None:
        self.model = LinearModel.load(Path(context.artifacts["model"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        return self.model.predict(model_input)
