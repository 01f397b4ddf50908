"""orchestration/registry.py against a real MLflow SQLite store in a temporary folder.

One store serves the whole module (creating its tables takes seconds); every test
registers into a model name of its own, so tests don't see each other's versions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ml.baselines import OverallRate, RateByGroup
from ml.model import PropensityModel
from ml.plots import roc_figure
from orchestration.environment import current_environment
from orchestration.parameters import load_parameters
from orchestration.registry import (
    HISTORY_TAG,
    ModelRef,
    Registry,
    RegistryError,
    flatten_params,
    local_tracking_uri,
    tracking_uri,
)
from tests.ml.synthetic import make_examples

EXPERIMENT = "nextbuy-test"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return local_tracking_uri(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def examples() -> pd.DataFrame:
    """Marts-shaped rows with NULLs in categorical columns."""
    return make_examples(400, seed=3)


@pytest.fixture
def registry(store: str, request: pytest.FixtureRequest) -> Registry:
    return Registry(
        store, experiment=EXPERIMENT, model_name=f"m-{request.node.name}", alias="champion"
    )


def _log(registry: Registry, scorer: Any, examples: pd.DataFrame, **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "run_name": f"run-{scorer.name}",
        "scorer": scorer,
        "kind": "baseline",
        "params": {"baseline": scorer.name},
        "data_window": {"train_start": "2026-01-01", "test_examples": "100"},
        "metrics": {"roc_auc": 0.5},
        "figures": {},
        "tables": {},
        "input_example": examples.head(5),
        "tags": {},
    }
    return registry.log_run(**{**arguments, **overrides})


@pytest.fixture(scope="module")
def baseline_run(store: str, examples: pd.DataFrame) -> tuple[str, RateByGroup]:
    """One logged run of a fitted rule, for tests that only need something to register."""
    scorer = RateByGroup("gender").fit(examples, examples["label"])
    shared = Registry(store, experiment=EXPERIMENT, model_name="shared", alias="champion")
    return _log(shared, scorer, examples), scorer


def test_local_store_lives_under_home(tmp_path: Path) -> None:
    uri = local_tracking_uri(tmp_path / "home")
    assert uri == f"sqlite:///{tmp_path / 'home' / 'mlflow' / 'mlflow.db'}"
    assert (tmp_path / "home" / "mlflow" / "artifacts").is_dir()


def test_tracking_uri_honours_mlflow_tracking_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = current_environment()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(env) == local_tracking_uri(tmp_path / "home")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert tracking_uri(env) == "http://mlflow.internal:5000"


def test_from_parameters_reads_the_registry_section(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    registry = Registry.from_parameters(load_parameters(), current_environment())
    assert (registry.tracking_uri, registry.model_name, registry.alias) == (
        store,
        "nextbuy-brand-propensity",
        "champion",
    )


def test_nested_params_are_flattened_and_truncated() -> None:
    flat = flatten_params(
        {"model": {"depth": 6, "tokenizers": [{"delimiter": ";"}]}, "long": "x" * 7000}
    )
    assert flat["model.depth"] == "6"
    assert json.loads(flat["model.tokenizers"]) == [{"delimiter": ";"}]
    assert len(flat["long"]) == 6000


def test_log_register_promote_and_load(registry: Registry, examples: pd.DataFrame) -> None:
    scorer = OverallRate().fit(examples, examples["label"])
    figure, axes = plt.subplots()
    axes.plot([0, 1], [0, 1])
    y = examples["label"].to_numpy(dtype=np.float64)
    run_id = _log(
        registry,
        scorer,
        examples,
        params={"split": {"test_days": 28}, "campaign.target_brands": ["Hanes", "Diesel"]},
        metrics={
            "roc_auc": 0.5,
            "gender.F.roc_auc": math.nan,
            "lift": None,
            "brier": np.float64(0.2),
        },
        figures={
            "roc.png": figure,
            "gains": roc_figure(y, {"overall": scorer.predict_proba(examples)}),
        },
        tables={"metrics_by_slice": pd.DataFrame({"slice": ["gender"], "roc_auc": [0.5]})},
        tags={"dagster.run_id": "abc"},
    )
    run = registry.client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["split.test_days"] == "28"
    assert json.loads(run.data.params["campaign.target_brands"]) == ["Hanes", "Diesel"]
    assert run.data.params["data.train_start"] == "2026-01-01"
    assert run.data.metrics == {"roc_auc": 0.5, "brier": 0.2}  # NaN and None skipped
    assert run.data.tags["kind"] == "baseline" and run.data.tags["scorer_name"] == "overall_rate"
    assert run.data.tags["dagster.run_id"] == "abc"
    artifacts = {a.path for a in registry.client.list_artifacts(run_id)}
    assert {"data_window.json", "input_example.json", "figures", "tables"} <= artifacts
    figures = {a.path for a in registry.client.list_artifacts(run_id, "figures")}
    assert figures == {"figures/roc.png", "figures/gains.png"}
    assert not plt.fignum_exists(figure.number)  # closed once logged
    experiment = registry.client.get_experiment(registry.experiment_id())
    assert experiment.artifact_location.startswith(
        Path(registry.tracking_uri.removeprefix("sqlite:///")).parent.as_uri()
    )

    ref = registry.register(run_id)
    assert (ref.version, ref.kind, ref.scorer_name, ref.run_id) == (
        "1",
        "baseline",
        "overall_rate",
        run_id,
    )
    assert ref.label() == f"{registry.model_name} v1 (overall_rate)"
    assert registry.champion() is None  # registered is not promoted

    registry.promote(ref, "first champion")
    assert registry.champion() == ref
    loaded = registry.load_scorer(ref)
    np.testing.assert_array_equal(loaded.predict(examples), scorer.predict_proba(examples))


def test_a_catboost_model_scores_the_same_once_loaded(
    registry: Registry, examples: pd.DataFrame
) -> None:
    section = load_parameters()["model"]
    section["catboost"] = {**section["catboost"], "iterations": 20, "thread_count": 1}
    model = PropensityModel.from_parameters(section).fit(examples, examples["label"])
    run_id = _log(registry, model, examples, kind="model")
    ref = registry.register(run_id)
    assert examples["gender"].isna().any()  # NULLs reach the loaded model as they are
    scores = registry.load_scorer(ref).predict(examples)
    assert scores.dtype == np.float64 and scores.shape == (len(examples),)
    np.testing.assert_allclose(scores, model.predict_proba(examples))


def test_decision_is_kept_on_the_version(
    registry: Registry, baseline_run: tuple[str, RateByGroup]
) -> None:
    run_id, _ = baseline_run
    ref = registry.register(run_id)
    decision = {"promote": False, "reason": "no better than rate_by_gender", "margin": 0.005}
    registry.record_decision(ref, decision)
    tags = registry.client.get_model_version(ref.name, ref.version).tags
    assert tags["gate.promote"] == "false"
    assert tags["gate.reason"] == "no better than rate_by_gender"
    path = registry.client.download_artifacts(run_id, f"gate_decision_v{ref.version}.json")
    saved = json.loads(Path(path).read_text())
    assert saved["promote"] is False and saved["margin"] == 0.005


def test_rollback_walks_back_through_earlier_champions(
    registry: Registry, baseline_run: tuple[str, RateByGroup]
) -> None:
    run_id, _ = baseline_run
    with pytest.raises(RegistryError, match="has no 'champion' alias"):
        registry.rollback()
    first, second, third = (registry.register(run_id) for _ in range(3))
    assert registry.versions() == [first, second, third]
    registry.promote(first, "first")
    with pytest.raises(RegistryError, match="no earlier champion") as error:
        registry.rollback()
    assert registry.model_name in str(error.value)
    registry.promote(second, "second")
    registry.promote(third, "third")

    assert registry.rollback() == second
    assert registry.champion() == second
    assert registry.rollback() == first
    with pytest.raises(RegistryError, match="v1 and there is no earlier champion"):
        registry.rollback()
    assert registry.champion() == first
    actions = [(e["action"], e["version"]) for e in registry.history()]
    assert actions == [
        ("promote", "1"),
        ("promote", "2"),
        ("promote", "3"),
        ("rollback", "2"),
        ("rollback", "1"),
    ]
    assert registry.client.get_registered_model(registry.model_name).tags[HISTORY_TAG]


def test_champion_is_none_without_a_registered_model(registry: Registry) -> None:
    assert registry.champion() is None
    assert registry.history() == []


def test_registries_of_two_stores_do_not_share_mlflow_state(
    registry: Registry,
    examples: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Logging sets MLflow's global URI only for the call: an MLFLOW_TRACKING_URI of the
    process (here a store nobody uses) stays as it was and receives nothing."""
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    monkeypatch.chdir(tmp_path)
    run_id = _log(registry, OverallRate().fit(examples, examples["label"]), examples)
    ref = registry.register(run_id)
    registry.load_scorer(ref)
    assert isinstance(ref, ModelRef)
    import mlflow

    assert mlflow.get_tracking_uri() == elsewhere
    assert not (tmp_path / "elsewhere.db").exists()
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
