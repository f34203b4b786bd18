"""The demo's clients: single-row predictions through the router, then their true labels."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import httpx
import numpy as np
import pandas as pd


@dataclass
class Clients:
    """Clients sending single-row predictions through the router, then their true labels."""

    url: str
    model_name: str
    rows: pd.DataFrame
    features: tuple[str, ...]
    target: str
    feedback_token: str  # MLPLATFORM_FEEDBACK_TOKEN of the router (the stack's tokens)
    sent: int = 0
    failures: list[str] = field(default_factory=list)

    def send(self, n: int, feedback: bool = True) -> None:
        with httpx.Client(timeout=60) as c:
            for _, row in self.rows.sample(n=n, replace=True, random_state=self.sent).iterrows():
                self._one(c, row, feedback)

    def _one(self, c: httpx.Client, row: pd.Series, feedback: bool) -> None:
        body = {"instances": [[_plain(row[f]) for f in self.features]]}
        r = c.post(f"{self.url}/v1/models/{self.model_name}:predict", json=body)
        self.sent += 1
        if r.status_code != 200:
            self.failures.append(f"{r.status_code} {r.text[:200]}")
            return
        if feedback:
            label = {"request_id": r.headers["x-request-id"], "label": float(row[self.target])}
            auth = {"Authorization": f"Bearer {self.feedback_token}"}
            c.post(f"{self.url}/v1/feedback", json=label, headers=auth).raise_for_status()

    def background(self) -> tuple[threading.Event, threading.Thread]:
        """Keep sending (without labels) in a thread until the returned event is set."""
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                self.send(10, feedback=False)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return stop, thread


def _plain(v: object) -> object:
    return v.item() if isinstance(v, np.generic) else v
