"""Shared field types of the config: a strict base model, the traffic percentage, the KS method."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

#: How the KS p-value is computed (``monitor.ks_method``; the core's drift tests take it).
KSMethod = Literal["auto", "asymp"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


PERCENT_RANGE = (0, 100)
#: A share of traffic in %: the config's ``serve.canary_percent`` and the router's admin API.
Percent = Annotated[int, Field(ge=PERCENT_RANGE[0], le=PERCENT_RANGE[1])]
_PERCENT: TypeAdapter[int] = TypeAdapter(Percent)


def as_percent(value: object, name: str = "canary_percent") -> int:
    """``value`` if it is a :data:`Percent` (an int, not a bool, float or string), else ValueError.

    >>> as_percent(30)
    30
    >>> as_percent(101)
    Traceback (most recent call last):
    ValueError: canary_percent must be an integer in 0..100, got 101
    """
    try:
        return _PERCENT.validate_python(value, strict=True)
    except ValidationError:
        low, high = PERCENT_RANGE
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}") from None
