"""What is being explained: a model seen through its encoded feature space.

Every engine (LIME, Anchor, their quality, the global view) explains the same thing: a
black box, the training rows its neighbourhoods are sampled from, and how to read its
output. :class:`ExplainTarget` holds these once, validated; the engines' settings stay in
:class:`~mlplatform.config.ExplainConfig` and the random generator is passed beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from mlplatform.core.explain.neighbourhood import Background, summarize_background
from mlplatform.core.explain.quartile import Quartiles, fit_quartiles
from mlplatform.core.explain.reference import Reference, reference_point
from mlplatform.core.explain.types import FloatArray, PredictFn, Task, check_background
from mlplatform.core.space import FeatureSpace
from mlplatform.errors import ExplanationError

_TASKS = ("regression", "classification")


@dataclass(frozen=True, eq=False)
class ExplainTarget:
    """The model to explain, validated at construction.

    * ``predict_fn(Z: (n, d)) -> (n,)``: the model on encoded rows, the prediction for
      regression, P(class 1) for classification;
    * ``background``: (n_bg, d) encoded training rows (neighbourhoods, rule samples and
      coverage are drawn from them); stored as validated float64;
    * ``space``: the d encoded columns (names, categories, units);
    * ``task``; ``class_names``: labels of class 0 and 1 in anchors' outcomes;
    * ``threshold``: P(class 1) at or above which the model predicts class 1;
    * ``entity``: what a row is ("applicant"), in "compared with the average applicant";
    * ``reference_row``: an encoded row (d,) for ``cfg.reference`` given as a row.

    Raises ExplanationError for an empty background, an unknown task or not two class
    names, DataError for background rows that do not fit ``space``.

    >>> import numpy as np
    >>> space = FeatureSpace(names=("income", "debt"))
    >>> rows = np.random.default_rng(0).random((100, 2))
    >>> target = ExplainTarget(lambda Z: Z[:, 0] - Z[:, 1], rows, space, "regression")
    >>> target.background.shape, target.class_names
    ((100, 2), ('0', '1'))
    >>> ExplainTarget(lambda Z: Z[:, 0], rows[:0], space, "regression")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    mlplatform.errors.ExplanationError: background is empty: pass encoded training rows ...

    For a trained model: :func:`mlplatform.core.training.explain_target`.
    """

    predict_fn: PredictFn
    background: FloatArray
    space: FeatureSpace
    task: Task
    class_names: tuple[str, str] = ("0", "1")
    threshold: float = 0.5
    entity: str = "row"
    reference_row: FloatArray | None = None

    def __post_init__(self) -> None:
        if self.task not in _TASKS:
            raise ExplanationError(f"task must be one of {_TASKS}, got {self.task!r}")
        if len(self.class_names) != 2:
            raise ExplanationError(f"class_names needs two labels, got {self.class_names!r}")
        object.__setattr__(self, "background", check_background(self.background, self.space))

    @cached_property
    def background_summary(self) -> Background:
        """What LIME's neighbourhoods need from the background (spreads, code shares)."""
        return summarize_background(self.background, self.space)

    @cached_property
    def quartiles(self) -> Quartiles:
        """The background's quartile bins (the quartile representation of LIME)."""
        return fit_quartiles(self.background_summary)

    def reference(self, how: str | tuple[float | str, ...]) -> Reference:
        """The contributions' reference b: ``cfg.reference`` ("mean", "median" or a row)."""
        if isinstance(how, str):
            return reference_point(self.background, self.space, how, self.entity)
        if self.reference_row is None:
            raise ExplanationError("explain.reference is a row: build the target with it encoded")
        row = self.space.check(self.reference_row, "reference row")[0]
        return reference_point(self.background, self.space, "row", self.entity, row)
