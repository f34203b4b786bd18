"""The sink's structural check of a logged request (``serving/request_check.py``) against
what the predictor accepts: every body the real model refuses for a structural reason is a
client error, every body it accepts passes."""

from __future__ import annotations

import json

import pytest

from mlplatform.config import load_config
from mlplatform.core.model import LinearModel
from mlplatform.errors import PlatformError
from mlplatform.serving.inputs import encode, v1_frame
from mlplatform.serving.request_check import RequestCheck

CFG = load_config("configs/credit-risk.yaml", env={})
CHECK = RequestCheck(
    tuple(CFG.feature_names), tuple(CFG.numeric_features), CFG.entity, CFG.serve.max_instances
)
ROW = [40, 2e7, 0.2, 0, 5]
BODIES = [
    {"instances": [ROW]},
    {"instances": [ROW] * 3},
    {"instances": [dict(zip(CFG.feature_names, ROW, strict=True))]},
    {"instances": [[40, "20000000", 0.2, 0, 5]]},  # a numeric string: the model parses it
    {"instances": [ROW[:4]]},
    {"instances": [[40, "rich", 0.2, 0, 5]]},
    {"instances": [[40, True, 0.2, 0, 5]]},
    {"instances": [[40, float("nan"), 0.2, 0, 5]]},
    {"instances": []},
    {"instances": [ROW] * (CFG.serve.max_instances + 1)},
    {"instances": "rows"},
    {"rows": [ROW]},
    [ROW],
    {"instances": [7]},
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> LinearModel:
    from mlplatform.stages import generate_data, train_job

    tmp = tmp_path_factory.mktemp("m")
    cfg = CFG.with_overrides(
        artifacts_dir=str(tmp / "a"),  # type: ignore[arg-type]
        data={"rows": 300, "data_dir": str(tmp / "d")},
        train={"epochs": 20},
    )
    return LinearModel.load(train_job(cfg, generate_data(cfg)).files["model"])


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_the_check_agrees_with_the_predictor(trained: LinearModel, body: object) -> None:
    text = json.dumps(body, allow_nan=True)
    try:
        encode(trained, v1_frame(text, trained, CFG.entity, CFG.serve.max_instances))
        refused = False
    except PlatformError as exc:
        assert exc.status < 500, exc  # a client error, as the predictor answers it
        refused = True
    assert (CHECK.reason(text) is not None) == refused, CHECK.reason(text)


def test_entity_rows_pass_unless_the_id_is_not_an_integer() -> None:
    assert CHECK.reason(json.dumps({"instances": [{CFG.entity: 12}]})) is None
    assert CHECK.reason(json.dumps({"instances": [{CFG.entity: "12"}]})) is not None
    assert CHECK.reason(None) == "not JSON"


def test_module_examples() -> None:
    import doctest

    import mlplatform.serving.request_check

    assert doctest.testmod(mlplatform.serving.request_check).failed == 0
