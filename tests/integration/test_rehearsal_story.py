"""Rehearsal: the README's "Deploy on kind" story end to end, bounded (house-price only).

tests/support/rehearsal/story.py takes the steps as the README tells them, with the real
scripts and the rehearsal's parts: deploy without serving, push the data, train through the
KFP stand-in (champion), deploy serving, predict and explain through the ingress, train again
(challenger), deploy it as a 10 % canary, let the real rollout controller step and promote it
under client traffic, shift the world, run the monitor CronJob once (one alert) and the retrain
CronJob once (one run, a new challenger); then check the payload log and a restarted predictor.

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
    with story(tmp_path_factory.mktemp("story"), ("house-price",)) as s:
        yield s


def take(s: Story, name: str) -> None:
    """Step ``name``; skipped when an earlier step did not finish."""
    names = [n for n, _ in Story.STEPS]
    if s.done != names[: names.index(name)]:
        pytest.skip(f"an earlier step failed (done: {s.done})")
    s.step(name)


def test_a_make_deploy_without_serving(rehearsal: Story) -> None:
    take(rehearsal, "deploy_platform")
    assert {"mlplatform-mlflow", "mlplatform-payload-sink"} <= set(rehearsal.world.workloads)


def test_b_make_cluster_data(rehearsal: Story) -> None:
    take(rehearsal, "cluster_data")
    assert len(rehearsal.data_versions["house-price"]) == 32


def test_c_first_pipeline_run_registers_the_champion(rehearsal: Story) -> None:
    take(rehearsal, "first_training")
    # the register step names the first version champion and challenger
    assert rehearsal.aliases("house-price") == {"champion": "1", "challenger": "1"}


def test_d_make_deploy_serves_the_champion(rehearsal: Story) -> None:
    take(rehearsal, "deploy_serving")
    assert rehearsal.served("house-price") == "v1"


def test_d_predict_and_explain_through_the_ingress(rehearsal: Story) -> None:
    take(rehearsal, "predict_and_explain")


def test_e_second_pipeline_run_registers_a_challenger(rehearsal: Story) -> None:
    take(rehearsal, "second_training")
    assert rehearsal.aliases("house-price") == {"champion": "1", "challenger": "2"}


def test_e_make_canary_starts_a_ten_percent_revision(rehearsal: Story) -> None:
    take(rehearsal, "canary")
    assert rehearsal.served("house-price") == "v2 canary 10%"


def test_f_the_rollout_controller_promotes_the_canary(rehearsal: Story) -> None:
    take(rehearsal, "rollout")
    assert rehearsal.aliases("house-price") == {"champion": "2"}
    assert rehearsal.served("house-price") == "v2"


def test_g_shifted_traffic_makes_one_alert(rehearsal: Story) -> None:
    take(rehearsal, "drift_alert")


def test_g_retrain_starts_one_run_which_registers_a_challenger(rehearsal: Story) -> None:
    take(rehearsal, "retrain")
    assert rehearsal.aliases("house-price") == {"champion": "2", "challenger": "3"}


def test_afterwards_payload_log_and_restarted_predictor(rehearsal: Story) -> None:
    take(rehearsal, "afterwards")
