"""Links into MLflow's UI (orchestration/tracking.py), without a store: the routes are
those of MLflow 3's UI bundle (a hash router: ``#/experiments/<id>/runs/<run>``,
``#/models/<name>/versions/<v>``). The store-backed tracker tests live in
test_registry.py, which shares one store between the tracker and the registry."""

from __future__ import annotations

import pytest

from orchestration.tracking import (
    DEFAULT_MLFLOW_UI_URL,
    MLFLOW_UI_URL_ENV,
    experiment_url,
    mlflow_ui_url,
    model_version_url,
    run_url,
)
from orchestration.ui import UiPorts


@pytest.fixture(autouse=True)
def _no_configured_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MLFLOW_UI_URL_ENV, raising=False)


def test_the_ui_is_nextbuy_uis_mlflow_by_default() -> None:
    assert mlflow_ui_url() == DEFAULT_MLFLOW_UI_URL == f"http://127.0.0.1:{UiPorts().mlflow}"
    assert mlflow_ui_url() == "http://127.0.0.1:5000"
    # A local store has no UI of its own.
    assert mlflow_ui_url("sqlite:////tmp/home/mlflow/mlflow.db") == "http://127.0.0.1:5000"


def test_a_tracking_server_is_its_own_ui() -> None:
    assert mlflow_ui_url("https://mlflow.internal/") == "https://mlflow.internal"


def test_the_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MLFLOW_UI_URL_ENV, "https://mlflow.example.com/ui/ ")
    assert mlflow_ui_url() == "https://mlflow.example.com/ui"
    assert mlflow_ui_url("http://tracking:5000") == "https://mlflow.example.com/ui"
    assert run_url("1", "abc").startswith("https://mlflow.example.com/ui/#/experiments/1/")


def test_run_and_model_version_links() -> None:
    assert run_url("7", "0123abcd") == (
        "http://127.0.0.1:5000/#/experiments/7/runs/0123abcd?workflowType=machine_learning"
    )
    assert model_version_url("nextbuy-brand-propensity", "3") == (
        "http://127.0.0.1:5000/#/models/nextbuy-brand-propensity/versions/3"
        "?workflowType=machine_learning"
    )
    # A registered model name is one path segment, as the UI encodes it.
    assert "/#/models/a%20b%2Fc/versions/1?" in model_version_url("a b/c", "1")
    assert run_url("7", "r", tracking_uri="http://tracking:5000").startswith(
        "http://tracking:5000/#/experiments/7/runs/r"
    )


def test_experiment_link_opens_the_runs_list_in_a_saved_view() -> None:
    assert experiment_url("2") == (
        "http://127.0.0.1:5000/#/experiments/2/runs?workflowType=machine_learning"
    )
    assert experiment_url("2", view="nextbuy-test-metrics") == (
        "http://127.0.0.1:5000/#/experiments/2/runs"
        "?workflowType=machine_learning&viewStateShareKey=nextbuy-test-metrics"
    )
