"""The router's per-process wiring: the upstreams it routes to and the versions they serve,
the predictors the admin API may attach, and its tokens.

Everything else (model name, initial canary share, limits, timeouts, drain, payload log) is
the config: the router takes the ``PlatformConfig`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RouterSettings:
    """Where one router process sends requests (its ``--*-url`` and ``--*-version`` flags),
    which other predictors ``PUT /admin/canary`` may attach (``--upstream``), and the bearer
    tokens of feedback and of the admin API (``MLPLATFORM_FEEDBACK_TOKEN``,
    ``MLPLATFORM_ADMIN_TOKEN``; None closes the route, see :mod:`mlplatform.serving.tokens`)."""

    stable_url: str
    canary_url: str | None = None
    explainer_url: str | None = None
    stable_version: str | None = None
    canary_version: str | None = None
    upstreams: tuple[str, ...] = ()
    feedback_token: str | None = field(default=None, repr=False)
    admin_token: str | None = field(default=None, repr=False)

    def known_upstreams(self) -> frozenset[str]:
        """The predictors this router may send traffic to (:func:`same_url` form)."""
        urls = (self.stable_url, self.canary_url, *self.upstreams)
        return frozenset(same_url(u) for u in urls if u)


def same_url(url: str) -> str:
    """``url`` compared as the router compares upstreams: no trailing slash, lower case.

    >>> same_url("HTTP://127.0.0.1:8082/")
    'http://127.0.0.1:8082'
    """
    return url.strip().rstrip("/").lower()
