"""Bearer tokens of the serving API: who may write ground truth, and who may drive the router.

=============================  ================================================================
``MLPLATFORM_FEEDBACK_TOKEN``  ``POST /v1/feedback`` on the router and on the payload sink
``MLPLATFORM_ADMIN_TOKEN``     the router's admin port (``/admin/*``) and the variant pin header
=============================  ================================================================

Clients send ``Authorization: Bearer <token>``. A server reads its tokens from the environment
(on the cluster, a Secret); a route whose token is not configured is closed (HTTP 401 saying
so), never open. Locally, ``mlplatform serve`` and ``make demo`` take them from
:func:`local_tokens`: the environment's, else ``<artifacts_dir>/tokens.json`` (mode 0600),
generated on first use, so the demo's clients and the rollout controller hold the same tokens
as the servers they call.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import orjson

from mlplatform.errors import TokenError

FEEDBACK_TOKEN_ENV = "MLPLATFORM_FEEDBACK_TOKEN"
ADMIN_TOKEN_ENV = "MLPLATFORM_ADMIN_TOKEN"
TOKENS_FILE = "tokens.json"


@dataclass(frozen=True)
class Tokens:
    """The two tokens of one local stack."""

    feedback: str
    admin: str

    def env(self) -> dict[str, str]:
        """As the environment variables the servers read."""
        return {FEEDBACK_TOKEN_ENV: self.feedback, ADMIN_TOKEN_ENV: self.admin}


def env_token(name: str) -> str | None:
    """The token in environment variable ``name``, or None when unset or empty."""
    return os.environ.get(name) or None


def local_tokens(folder: Path) -> Tokens:
    """The environment's tokens, else those in ``folder/tokens.json`` (created with random
    tokens, readable by the owner only, when absent)."""
    path = folder / TOKENS_FILE
    if path.exists():
        saved = orjson.loads(path.read_bytes())
    else:
        saved = {"feedback": secrets.token_urlsafe(32), "admin": secrets.token_urlsafe(32)}
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(saved))
    return Tokens(
        env_token(FEEDBACK_TOKEN_ENV) or saved["feedback"],
        env_token(ADMIN_TOKEN_ENV) or saved["admin"],
    )


def bearer(token: str) -> dict[str, str]:
    """The header that proves ``token``."""
    return {"Authorization": f"Bearer {token}"}


def check_bearer(authorization: str | None, token: str | None, what: str, env: str) -> None:
    """Raise :class:`TokenError` unless ``authorization`` is ``Bearer <token>``; ``what`` names
    the protected action and ``env`` where the server reads its token, for the reason."""
    if token is None:
        raise TokenError(f"{what} is closed: this server has no token configured ({env})")
    scheme, _, sent = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not sent.strip():
        raise TokenError(f"{what} needs the header 'Authorization: Bearer <token>' ({env})")
    if not hmac.compare_digest(sent.strip().encode(), token.encode()):
        raise TokenError(f"{what}: wrong token")
