"""orchestration/{mlflow_store,tracking,registry}.py against real MLflow SQLite stores in
temporary folders.

One store serves the whole module (creating its tables takes seconds) and is MLflow's
configured store while the module runs; every test registers into a model name of its
own, so tests don't see each other's versions. MLflow's process-wide URIs are put back
afterwards, so no other test module sees these stores.

Kept whole: the tracker's and the registry's tests share that one store, and the
registry's tests register runs the tracker logged.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from ml.baselines import OverallRate, RateByGroup
from ml.model import PropensityModel
from ml.plots import roc_figure
from orchestration.environment import current_environment
from orchestration.mlflow_store import (
    configure_mlflow,
    local_tracking_uri,
    require_configured,
    tracking_uri,
)
from orchestration.registry import ModelRef, Registry, RegistryError
from orchestration.tracking import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    NOTE_TAG,
    RUNS_VIEW_ID,
    RUNS_VIEW_NAME,
    Tracker,
    flatten_params,
)
from tests.ml.synthetic import make_examples

EXPERIMENT = "nextbuy-test"
PARAMETERS = Path(__file__).resolve().parents[2] / "parameters.yaml"


@pytest.fixture(scope="module", autouse=True)
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The module's store, configured as MLflow's for the module's tests."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    uri = local_tracking_uri(tmp_path_factory.mktemp("store"))
    saved = tracking_utils._tracking_uri, registry_utils._registry_uri
    with mock.patch.dict(os.environ):
        configure_mlflow(uri)
        try:
            yield uri
        finally:
            mlflow.set_tracking_uri(saved[0])  # type: ignore[arg-type]
            mlflow.set_registry_uri(saved[1])  # type: ignore[arg-type]


@pytest.fixture
def reconfigure(store: str) -> Iterator[None]:
    """For a test that points MLflow elsewhere: the module's store again afterwards."""
    yield
    configure_mlflow(store)


@pytest.fixture(scope="module")
def examples() -> pd.DataFrame:
    """Marts-shaped rows with NULLs in categorical columns."""
    return make_examples(400, seed=3)


@pytest.fixture
def tracker(store: str) -> Tracker:
    return Tracker(store, experiment=EXPERIMENT)


@pytest.fixture
def registry(store: str, request: pytest.FixtureRequest) -> Registry:
    return Registry(store, model_name=f"m-{request.node.name}", alias="champion")


def _log(tracker: Tracker, scorer: Any, examples: pd.DataFrame, **overrides: Any) -> str:
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
    return tracker.log_run(**{**arguments, **overrides})


@pytest.fixture(scope="module")
def baseline_run(store: str, examples: pd.DataFrame) -> str:
    """One logged run of a fitted rule, for tests that only need something to register."""
    scorer = RateByGroup("gender").fit(examples, examples["label"])
    return _log(Tracker(store, experiment=EXPERIMENT), scorer, examples)


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


def test_configure_mlflow_points_tracking_and_registry_at_one_store(
    store: str, tmp_path: Path, reconfigure: None
) -> None:
    require_configured(store)
    elsewhere = local_tracking_uri(tmp_path / "elsewhere")
    configure_mlflow(elsewhere)
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == (elsewhere, elsewhere)
    # Subprocesses inherit the store; artifact transfers draw no progress bars.
    assert os.environ["MLFLOW_TRACKING_URI"] == elsewhere
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
    require_configured(elsewhere)
    with pytest.raises(RuntimeError, match=r"call configure_mlflow\('sqlite:///"):
        require_configured(store)


def test_nested_params_are_flattened_and_truncated() -> None:
    flat = flatten_params(
        {
            "model": {"depth": 6, "tokenizers": [{"delimiter": ";"}]},
            "weights": [np.float64(0.5), math.nan],
            "seed": np.int64(42),
            "long": "x" * 7000,
            "bad key!": "v",
        }
    )
    assert flat["model.depth"] == "6"
    assert json.loads(flat["model.tokenizers"]) == [{"delimiter": ";"}]
    assert json.loads(flat["weights"]) == [0.5, None]
    assert flat["seed"] == "42"
    assert len(flat["long"]) == 6000 and flat["long"].endswith("...")
    assert flat["bad key_"] == "v"


def test_log_register_promote_and_load(
    tracker: Tracker, registry: Registry, examples: pd.DataFrame
) -> None:
    scorer = OverallRate().fit(examples, examples["label"])
    figure, axes = plt.subplots()
    axes.plot([0, 1], [0, 1])
    y = examples["label"].to_numpy(dtype=np.float64)
    run_id = _log(
        tracker,
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
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == tracker.experiment_id()
    assert run.data.params["split.test_days"] == "28"
    assert json.loads(run.data.params["campaign.target_brands"]) == ["Hanes", "Diesel"]
    assert run.data.params["data.train_start"] == "2026-01-01"
    assert run.data.metrics == {"roc_auc": 0.5, "brier": 0.2}  # NaN and None skipped
    assert run.data.tags["kind"] == "baseline" and run.data.tags["scorer_name"] == "overall_rate"
    assert run.data.tags["dagster.run_id"] == "abc"
    artifacts = {a.path for a in tracker.client.list_artifacts(run_id)}
    assert {"data_window.json", "input_example.json", "figures", "tables"} <= artifacts
    window = Path(tracker.client.download_artifacts(run_id, "data_window.json")).read_text()
    assert json.loads(window) == {"train_start": "2026-01-01", "test_examples": "100"}
    example = Path(tracker.client.download_artifacts(run_id, "input_example.json")).read_text()
    assert len(json.loads(example)["data"]) == 5
    figures = {a.path for a in tracker.client.list_artifacts(run_id, "figures")}
    assert figures == {"figures/roc.png", "figures/gains.png"}
    tables = {a.path for a in tracker.client.list_artifacts(run_id, "tables")}
    assert tables == {"tables/metrics_by_slice.csv"}
    assert not plt.fignum_exists(figure.number)  # closed once logged
    experiment = tracker.client.get_experiment(tracker.experiment_id())
    assert experiment.artifact_location.startswith(
        Path(tracker.tracking_uri.removeprefix("sqlite:///")).parent.as_uri()
    )
    assert tracker.artifact_uri(run_id).startswith(experiment.artifact_location)

    ref = registry.register(run_id)
    assert (ref.version, ref.kind, ref.scorer_name, ref.run_id) == (
        "1",
        "baseline",
        "overall_rate",
        run_id,
    )
    assert ref.uri == f"models:/{registry.model_name}/1"
    assert ref.label() == f"{registry.model_name} v1 (overall_rate)"
    assert registry.champion() is None  # registered is not promoted

    registry.promote(ref, "first champion")
    assert registry.champion() == ref
    loaded = registry.load_scorer(ref)
    assert loaded.ref == ref
    np.testing.assert_array_equal(loaded.predict(examples), scorer.predict_proba(examples))


def test_a_catboost_model_scores_the_same_once_loaded(
    tracker: Tracker, registry: Registry, examples: pd.DataFrame
) -> None:
    section = yaml.safe_load(PARAMETERS.read_text(encoding="utf-8"))["model"]
    model = PropensityModel(
        categorical_features=section["categorical_features"],
        numeric_features=section["numeric_features"],
        text_features=section["text_features"],
        catboost_params={**section["catboost"], "iterations": 20, "thread_count": 1},
        missing_category=section["missing_category"],
        correct_class_weights=section["correct_class_weights"],
    ).fit(examples, examples["label"])
    run_id = _log(tracker, model, examples, kind="model", features=examples)
    ref = registry.register(run_id)
    assert (ref.kind, ref.scorer_name) == ("model", "catboost")
    # The signature names the model's features, not the ids and label beside them.
    info = mlflow.models.get_model_info(ref.uri)
    assert info.signature is not None
    assert info.signature.inputs.input_names() == list(model.feature_names_in_)
    assert examples["gender"].isna().any()  # NULLs reach the loaded model as they are
    scores = registry.load_scorer(ref).predict(examples)
    assert scores.dtype == np.float64 and scores.shape == (len(examples),)
    np.testing.assert_allclose(scores, model.predict_proba(examples))


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_a_run_spans_its_step_and_says_what_it_is(
    tracker: Tracker, registry: Registry, examples: pd.DataFrame
) -> None:
    """What MLflow's UI shows: the run's description and duration, the experiment's kind,
    and a model with a signature and an input example."""
    scorer = RateByGroup("gender").fit(examples, examples["label"])
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=90)
    ended = started + dt.timedelta(seconds=86)
    note = "rate_by_gender trained on 2026-01-01 to 2026-03-31; awaiting the promotion gate"
    run_id = _log(
        tracker,
        scorer,
        examples,
        description=note,
        start_time=started,
        end_time=ended,
        features=examples,
    )
    run = tracker.client.get_run(run_id)
    assert (run.info.start_time, run.info.end_time) == (_ms(started), _ms(ended))
    assert run.data.tags[NOTE_TAG] == note
    tracker.end_now(run_id)  # work done for the run after it was logged
    assert tracker.client.get_run(run_id).info.end_time >= _ms(started) + 90_000
    experiment = tracker.client.get_experiment(tracker.experiment_id())
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"

    # The logged model: the rule's one column, optional (NULL genders score), one float
    # out, and an input example of that column.
    info = mlflow.models.get_model_info(f"models:/{run.data.tags['model_id']}")
    assert info.signature is not None
    assert info.signature.inputs.input_names() == ["gender"]
    assert [spec.required for spec in info.signature.inputs.inputs] == [False]
    assert info.signature.outputs is not None
    assert info.saved_input_example_info is not None
    assert info.saved_input_example_info["type"] == "dataframe"

    ref = registry.register(run_id)
    version = registry.client.get_model_version(ref.name, ref.version)
    assert version.description == note  # the run's note
    model = mlflow.pyfunc.load_model(ref.uri)
    example = model.input_example
    assert isinstance(example, pd.DataFrame)
    assert example.columns.tolist() == ["gender"] and len(example) == 5
    with_nulls = examples[["gender"]].head(30)
    assert with_nulls["gender"].isna().any()
    np.testing.assert_allclose(
        np.asarray(model.predict(with_nulls), dtype=np.float64),
        scorer.predict_proba(with_nulls),
    )

    # Once the gate decided, the version and the run say so.
    registry.describe(ref, f"{note.removesuffix('; awaiting the promotion gate')}; not promoted")
    described = registry.client.get_model_version(ref.name, ref.version).description
    assert described.endswith("2026-03-31; not promoted")
    assert registry.client.get_run(run_id).data.tags[NOTE_TAG] == described


def test_an_older_experiment_is_tagged_as_machine_learning(store: str) -> None:
    client = mlflow.MlflowClient(store)
    client.create_experiment("nextbuy-older")
    tracker = Tracker(store, experiment="nextbuy-older")
    experiment = client.get_experiment(tracker.experiment_id())
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


def test_the_runs_view_is_saved_on_the_experiment(tracker: Tracker) -> None:
    """The "Views" menu of MLflow 3's runs list reads saved views from experiment tags
    ``mlflow.sharedViewState.<id>``: an envelope (name, createdAt, updatedAt) around the
    view's state, JSON with the selected columns."""
    key = f"mlflow.sharedViewState.{RUNS_VIEW_ID}"

    def saved() -> dict[str, Any]:
        tags = tracker.client.get_experiment(tracker.experiment_id()).tags
        envelope: dict[str, Any] = json.loads(tags[key])
        return envelope

    assert tracker.save_runs_view(["roc_auc", "lift_at_10"]) == RUNS_VIEW_ID
    first = saved()
    assert first["name"] == RUNS_VIEW_NAME
    assert isinstance(first["createdAt"], int) and first["updatedAt"] >= first["createdAt"]
    state = json.loads(first["state"])
    assert state["selectedColumns"] == [
        "attributes.`Models`",
        "tags.`scorer_name`",
        "metrics.`roc_auc`",
        "metrics.`lift_at_10`",
        "attributes.`Description`",
    ]
    assert state["columnOrder"] == ["duration", *state["selectedColumns"]]
    tracker.save_runs_view(["roc_auc", "lift_at_10"])
    assert saved() == first  # unchanged columns: not rewritten
    tracker.save_runs_view(["pr_auc"])
    changed = saved()
    assert changed["createdAt"] == first["createdAt"]
    assert "metrics.`pr_auc`" in json.loads(changed["state"])["selectedColumns"]


def test_a_run_without_a_logged_model_is_not_registered(
    tracker: Tracker, registry: Registry
) -> None:
    run = tracker.client.create_run(tracker.experiment_id())
    with pytest.raises(RegistryError, match=r"holds no model logged by Tracker\.log_run"):
        registry.register(run.info.run_id)


def test_decision_is_kept_on_the_version(registry: Registry, baseline_run: str) -> None:
    ref = registry.register(baseline_run)
    decision = {
        "promote": False,
        "reason": "no better than rate_by_gender",
        "margin": np.float64(0.005),
        "lift": math.nan,
        "test_examples": np.int64(120),
    }
    registry.record_decision(ref, decision)
    tags = registry.client.get_model_version(ref.name, ref.version).tags
    assert tags["gate.promote"] == "false"
    assert tags["gate.reason"] == "no better than rate_by_gender"
    assert tags["gate.decided_at"]
    path = registry.client.download_artifacts(baseline_run, f"gate_decision_v{ref.version}.json")
    saved = json.loads(Path(path).read_text())  # strict JSON: NaN would not parse back
    assert saved["promote"] is False and saved["margin"] == 0.005
    assert saved["lift"] is None and saved["test_examples"] == 120
    assert (saved["model"], saved["version"]) == (ref.name, ref.version)


def test_rollback_walks_back_through_earlier_champions(
    registry: Registry, baseline_run: str
) -> None:
    with pytest.raises(RegistryError, match="has no 'champion' alias"):
        registry.rollback()
    first, second, third = (registry.register(baseline_run) for _ in range(3))
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
    history = registry.history()
    assert [(e["action"], e["version"], e.get("from")) for e in history] == [
        ("promote", "1", None),
        ("promote", "2", None),
        ("promote", "3", None),
        ("rollback", "2", "3"),
        ("rollback", "1", "2"),
    ]
    assert [e["reason"] for e in history] == [
        "first",
        "second",
        "third",
        "rollback from v3",
        "rollback from v2",
    ]
    assert all(e["at"] and set(e) <= {"action", "version", "from", "reason", "at"} for e in history)
    assert [e["at"] for e in history] == sorted(e["at"] for e in history)
    # The history lives on the versions the alias moved to, not in a registered-model tag.
    tags = registry.client.get_model_version(registry.model_name, "2").tags
    assert (tags["champion.2.action"], tags["champion.2.reason"]) == ("promote", "second")
    assert (tags["champion.4.action"], tags["champion.4.from"]) == ("rollback", "3")
    assert registry.client.get_registered_model(registry.model_name).tags == {}


def test_a_champion_again_is_rolled_back_from_its_latest_promotion(
    registry: Registry, baseline_run: str
) -> None:
    first, second = (registry.register(baseline_run) for _ in range(2))
    for ref in (first, second, first):
        registry.promote(ref, f"v{ref.version}")
    assert [(e["action"], e["version"]) for e in registry.history()] == [
        ("promote", "1"),
        ("promote", "2"),
        ("promote", "1"),
    ]
    assert registry.rollback() == second
    assert registry.rollback() == first


def test_rollback_skips_a_deleted_version(registry: Registry, baseline_run: str) -> None:
    first, second, third = (registry.register(baseline_run) for _ in range(3))
    for ref in (first, second, third):
        registry.promote(ref, f"v{ref.version}")
    registry.client.delete_model_version(registry.model_name, second.version)
    assert registry.rollback() == first
    assert [(e["action"], e["version"]) for e in registry.history()] == [
        ("promote", "1"),
        ("promote", "3"),
        ("rollback", "1"),
    ]


def test_champion_is_none_without_a_registered_model(registry: Registry) -> None:
    assert registry.champion() is None
    assert registry.versions() == []
    assert registry.history() == []


def test_two_stores_in_one_process_are_configured_in_turn(
    store: str,
    tracker: Tracker,
    registry: Registry,
    examples: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reconfigure: None,
) -> None:
    """Each store gets what was logged while it was configured, and nothing is logged or
    loaded through a store that is not the configured one."""
    monkeypatch.chdir(tmp_path)
    scorer = OverallRate().fit(examples, examples["label"])
    here = registry.register(_log(tracker, scorer, examples))

    other = local_tracking_uri(tmp_path / "other")
    configure_mlflow(other)
    other_tracker = Tracker(other, experiment=EXPERIMENT)
    other_registry = Registry(other, model_name=registry.model_name, alias="champion")
    there = other_registry.register(_log(other_tracker, scorer, examples))
    assert isinstance(there, ModelRef) and there.version == "1"
    assert other_registry.load_scorer(there).scorer.name == "overall_rate"
    assert registry.versions() == [here] and other_registry.versions() == [there]
    runs = other_tracker.client.search_runs([other_tracker.experiment_id()])
    assert [r.info.run_id for r in runs] == [there.run_id]

    with pytest.raises(RuntimeError, match="configure_mlflow"):
        registry.load_scorer(here)
    with pytest.raises(RuntimeError, match="configure_mlflow"):
        _log(tracker, scorer, examples, run_name="not-logged")
    assert not tracker.client.search_runs(
        [tracker.experiment_id()], filter_string="attributes.run_name = 'not-logged'"
    )
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()

    configure_mlflow(store)
    assert registry.load_scorer(here).ref == here
