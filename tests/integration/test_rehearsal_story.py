"""Rehearsal: the README's "Deploy on kind" story end to end, bounded (house-price only).

tests/support/rehearsal/story.py takes the steps as the README tells them, with the real
scripts and the rehearsal's parts: deploy without serving, push the data, train through the
KFP stand-in (champion), deploy serving, predict and explain through the ingress, train again
(challenger), deploy it as a 10 % canary, let the real rollout controller step and promote it
under client traffic, shift the world, run the monitor CronJob once (one alert) and the retrain
CronJob once (one run, a new challenger); canary the retrained challenger and delete the rollout
controller's pod mid-step (the new pod resumes and promotes); check the payload log and a
restarted predictor; last, a corrupted challenger is canaried and rolled back.

One test per step, in order, on one module-scoped story: a failed step names itself, and the
steps after it are skipped (they would only repeat its failure).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.rehearsal.story import Story, story
from tests.support.services import POSTGRES_URL, need

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.story]


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    need(POSTGRES_URL, 5432, "PostgreSQL")
    AFTER.clear()
    with story(tmp_path_factory.mktemp("story"), (MODEL,)) as s:
        yield s


MODEL = "house-price"


def snapshot(s: Story) -> dict[str, object]:
    """What the README's commands would show right after a step: the model's aliases and
    what its InferenceService serves (once there is one)."""
    out: dict[str, object] = {}
    if "first_training" in s.done:
        out["aliases"] = s.aliases(MODEL)
    if "deploy_serving" in s.done:
        out["served"] = s.served(MODEL)
    return out


def take(s: Story, name: str) -> dict[str, object]:
    """Step ``name``, after any earlier step not taken yet: the tests may run in any order
    (pytest-randomly), the story only in its own. Once a step failed, the tests of later
    steps are skipped (they would only repeat its failure). Returns :func:`snapshot` as it
    was right after the step (a later step may have been taken since)."""
    names = [n for n, _ in Story.STEPS]
    for step in names[: names.index(name) + 1]:
        if step in s.done:
            continue
        if s.failed:
            if s.failed == name:
                pytest.fail(f"step {name} failed in an earlier test (see its error)")
            pytest.skip(f"step {s.failed} failed")
        try:
            s.step(step)
        except BaseException:
            s.failed = step
            raise
        AFTER[step] = snapshot(s)
    return AFTER[name]


AFTER: dict[str, dict[str, object]] = {}  # step → its snapshot, for the one story of this module


def test_a_make_deploy_without_serving(rehearsal: Story) -> None:
    take(rehearsal, "deploy_platform")
    assert {"mlplatform-mlflow", "mlplatform-payload-sink"} <= set(rehearsal.world.workloads)


def test_b_make_cluster_data(rehearsal: Story) -> None:
    take(rehearsal, "cluster_data")
    assert len(rehearsal.data_versions[MODEL]) == 32


def test_c_first_pipeline_run_registers_the_champion(rehearsal: Story) -> None:
    after = take(rehearsal, "first_training")
    # the register step names the first version champion and challenger
    assert after["aliases"] == {"champion": "1", "challenger": "1"}


def test_d_make_deploy_serves_the_champion(rehearsal: Story) -> None:
    assert take(rehearsal, "deploy_serving")["served"] == "v1"


def test_d_predict_and_explain_through_the_ingress(rehearsal: Story) -> None:
    take(rehearsal, "predict_and_explain")


def test_e_second_pipeline_run_registers_a_challenger(rehearsal: Story) -> None:
    after = take(rehearsal, "second_training")
    assert after["aliases"] == {"champion": "1", "challenger": "2"}


def test_e_make_canary_starts_a_ten_percent_revision(rehearsal: Story) -> None:
    assert take(rehearsal, "canary")["served"] == "v2 canary 10%"


def test_f_the_rollout_controller_promotes_the_canary(rehearsal: Story) -> None:
    assert take(rehearsal, "rollout") == {"aliases": {"champion": "2"}, "served": "v2"}


def test_g_shifted_traffic_makes_one_alert(rehearsal: Story) -> None:
    take(rehearsal, "drift_alert")


def test_g_retrain_starts_one_run_which_registers_a_challenger(rehearsal: Story) -> None:
    after = take(rehearsal, "retrain")
    assert after["aliases"] == {"champion": "2", "challenger": "3"}


def test_h_the_retrained_challenger_survives_a_controller_restart_and_is_promoted(
    rehearsal: Story,
) -> None:
    after = take(rehearsal, "canary_retrained")
    assert after == {"aliases": {"champion": "3"}, "served": "v3"}


def test_i_afterwards_payload_log_and_restarted_predictor(rehearsal: Story) -> None:
    take(rehearsal, "afterwards")


def test_j_a_corrupted_challenger_is_rolled_back(rehearsal: Story) -> None:
    after = take(rehearsal, "corrupted_rollback")
    assert after == {"aliases": {"champion": "3"}, "served": "v4 canary 0%"}
