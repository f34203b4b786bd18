"""The story's later canaries, as the README tells them after the retrain: the retrained
challenger canaried while its rollout controller pod is deleted mid-step (the new pod resumes
at the same step), then a deliberately corrupted challenger canaried and rolled back.

A mixin of :class:`tests.support.rehearsal.story.Story`; nothing here is emulated beyond the
parts the story already uses (the ingress, the KServe controller, the Kubernetes API stand-in):
the controller is the chart's ``mlplatform rollout --watch`` pod, the registry the release's
MLflow through its port-forward.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.chart import RELEASE
from tests.support.rehearsal.client import Traffic

from mlplatform.serving.rollout_state import STATE_TAG, RolloutState

if TYPE_CHECKING:
    from tests.support.rehearsal.story import Story

Obj = dict[str, Any]
#: The step (index into ``rollout.steps``) at which the controller's pod is deleted.
RESTART_AT_STEP = 1


def _check(ok: object, message: str) -> None:
    from tests.support.rehearsal.story import check

    check(ok, message)


class LaterCanaries:
    """Steps ``canary_retrained`` and ``corrupted_rollback`` of the story."""

    def make_canary(self: Story, model: str) -> list[tuple[str, int]]:
        """``make canary MODEL=<m> PERCENT=10``: re-rendered with the challenger's version and
        ``canaryTrafficPercent``, written to the API stand-in as ``helm upgrade`` writes it."""
        assert self.world.kube is not None
        docs = self.render(serving=True, flags=self.serving_flags(canary=model))
        (isvc,) = [
            d for d in docs if d["kind"] == "InferenceService" and d["metadata"]["name"] == model
        ]
        self.world.kube.api.admin_apply(isvc)
        _check(not self.world.kube.api.reconcile_errors, f"{self.world.kube.api.reconcile_errors}")
        predictor = self.world.kube.api.get(model)["status"]["components"]["predictor"]
        traffic = [(t["revisionName"], int(t["percent"])) for t in predictor["traffic"]]
        _check([p for _, p in traffic] == [10, 90], f"{model}: traffic {traffic}")
        self.progress(f"  {model}: {self.served(model)}; traffic {traffic}")
        return traffic

    def rollout_state(self: Story, model: str, version: str) -> RolloutState | None:
        tags = self.mlflow_client().get_model_version(model, version).tags
        return RolloutState.from_tags(dict(tags)) if STATE_TAG in tags else None

    def wait_state(
        self: Story, model: str, version: str, done: Any, what: str, timeout: float = 600
    ) -> RolloutState:
        """Poll the rollout state the controller records on the version until ``done(state)``;
        the controller pod must stay up meanwhile."""
        pod = self.world.workloads[f"{RELEASE}-rollout-{model}"].pods[0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.rollout_state(model, version)
            if state is not None and done(state):
                return state
            assert pod.process is not None
            if pod.process.poll() is not None:
                log = self.world.log(pod).read_text(errors="replace")
                _check(False, f"{model}: the rollout controller exited:\n{log[-3000:]}")
            time.sleep(1)
        log = self.world.log(pod).read_text(errors="replace")
        raise AssertionError(
            f"{model}: v{version} {what} not seen in {timeout:.0f} s:\n{log[-3000:]}"
        )

    def predictor_percent(self: Story, model: str) -> object:
        assert self.world.kube is not None
        return self.world.kube.api.get(model)["spec"]["predictor"].get("canaryTrafficPercent")

    # -- the steps -----------------------------------------------------------------------
    def canary_retrained(self: Story) -> None:
        """The retrained challenger as a 10 % canary under the shifted world's traffic; at the
        second step the controller's pod is deleted (SIGTERM: it records where it stopped and
        leaves the split alone), its replacement resumes at that step and promotes."""
        for model in self.canaried:
            version = self.versions[model][-1]
            self.make_canary(model)
            rows = {model: self.feature_rows(model, 2.0, 500)}
            client = Traffic(self.post, (model,), rows)
            self.traffic.append(client)
            client.start()
            name = f"{RELEASE}-rollout-{model}"
            try:
                self.wait_state(model, version, lambda s: s.step >= RESTART_AT_STEP, "step 2")
                old = self.world.workloads[name].pods[0]
                percent = self.predictor_percent(model)
                pod = self.world.restart_pod(name)
                stopped = self.world.log(old).read_text(errors="replace")
                _check(
                    f"rollout: stopped at step {RESTART_AT_STEP + 1}" in stopped,
                    f"{model}: the deleted controller did not stop in order:\n{stopped[-2000:]}",
                )
                _check(
                    percent == self.predictor_percent(model),
                    f"{model}: the split moved while the controller was down",
                )
                self.progress(
                    f"  {model}: controller pod deleted at {percent}%, replaced by {pod.name}"
                )
                state = self.wait_state(model, version, lambda s: s.outcome, "an outcome")
            finally:
                client.stop()
            resumed = self.world.log(pod).read_text(errors="replace")
            _check(
                f"rollout: resuming v{version} at step {RESTART_AT_STEP + 1}" in resumed,
                f"{model}: the new controller pod did not resume:\n{resumed[-3000:]}",
            )
            _check(state.outcome == "promoted", f"{model}: v{version} {state}")
            _check(self._promoted(model), f"{model}: promoted but served {self.served(model)}")
            _check(not client.failed, f"client errors: {client.failed[:5]}")
            self.promoted[model] = version
            self.progress(
                f"  {model}: the new pod resumed at step {RESTART_AT_STEP + 1}, promoted v{version}"
            )
            self.progress(
                f"  client: {len(client.sent)} requests, answered {dict(client.answered)}"
            )

    def register_corrupted(self: Story, model: str) -> str:
        """What an engineer would do by hand: the champion's artefact with its bias pushed
        up by 8 (predictions near 1 for a classifier, +8 in target units for a regressor),
        registered through the release's MLflow and made the challenger."""
        from tests.support.rehearsal.world import ROOT

        from mlplatform.config import load_config
        from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry
        from mlplatform.reporting.console import library_output

        cfg = load_config(ROOT / "configs" / f"{model}.yaml", env={})
        reg = Registry(cfg.with_overrides(registry={"tracking_uri": self.mlflow}).registry)
        with tempfile.TemporaryDirectory() as tmp, library_output(self.tmp / "laptop"):
            champion = reg.load(model, CHAMPION)  # MLflow's download bar: to the log too
            broken = dataclasses.replace(champion, bias=champion.bias + 8.0)
            path = broken.save(Path(tmp) / "model.json")
            lineage = {"data_md5": self.data_versions[model], "note": "corrupted on purpose"}
            version = reg.log_and_register(path, {}, {}, [], lineage).version
        reg.set_alias(model, CHALLENGER, version, "rehearsal: a corrupted challenger")
        return version

    def corrupted_rollback(self: Story) -> None:
        """A corrupted challenger as a 10 % canary: the controller rolls it back (0 %, the
        champion's revision serves everything again) and drops its alias."""
        for model in self.canaried:
            champion = self.promoted[model]
            version = self.register_corrupted(model)
            self.versions[model] = self.model_versions(model)
            self.progress(f"  {model}: v{version} registered as challenger (bias + 8)")
            self.make_canary(model)
            rows = {model: self.feature_rows(model, 2.0, 500)}
            client = Traffic(self.post, (model,), rows)
            self.traffic.append(client)
            client.start()
            try:
                state = self.wait_state(model, version, lambda s: s.outcome, "an outcome")
            finally:
                client.stop()
            _check(state.outcome == "rolled_back", f"{model}: v{version} {state}")
            self.progress(f"  {model}: rolled back: {state.last_decision[:160]}")
            _check(self.predictor_percent(model) == 0, f"{model}: {self.served(model)}")
            aliases = self.aliases(model)
            _check(aliases == {"champion": champion}, f"{model}: aliases {aliases}")
            after = Traffic(self.post, (model,), rows)
            for i in range(30):
                after.one(model, i)
            self.traffic.append(after)
            answered = dict(after.answered)
            _check(answered == {(model, champion): 30}, f"{model}: after the rollback {answered}")
            self.progress(f"  {model}: 30 requests after the rollback, all answered by v{champion}")
