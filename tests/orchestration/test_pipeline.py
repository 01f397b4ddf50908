"""The whole pipeline, materialised in process on a small simulated shop.

One module-scoped history of runs on one NEXTBUY_HOME, recorded step by step, so that each
test reads what it needs without paying for the runs again:

1. a first run on a fresh warehouse (the champion is made),
2. a retrain on the same features (the candidate ties the champion; scoring is repeated),
3. a retrain with a deliberately worse candidate (a one-tree CatBoost),
4. a broken champion (scores above 1) promoted by hand: scoring refuses to publish its
   scores, then `rollback` restores the champion before it,
5. the daily loop: two new days, `nextbuy tick` (a `features` run over those days, then
   a `daily` run with the rolled-back champion), a second tick (nothing to do), a full
   refresh of the same data,
6. bad data: every product relabelled a target brand, so the label rate leaves its band
   and the training_examples suite blocks training (and `nextbuy retrain` after it),
7. a week later, the schedule's retrain, which the failing checks block too.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from orchestration.settings import load_parameters
from thelook.warehouse import connect

AS_OF = dt.date(2024, 7, 1)


# A shop whose customers are loyal to two favourite brands: a signal strong enough that,
# on 18 months of a small shop, the model beats every rule significantly (the default
# simulation's signal is subtler and needs years of a large shop; see README).
SHOP = {"users": 12_000, "start": dt.date(2023, 1, 1), "end": AS_OF - dt.timedelta(days=1)}
LOYAL = {"loyalty_alpha": 8.0, "loyalty_beta": 1.0, "favourite_brands": 2}


def _test_parameters(trials: int = 2, **catboost: Any) -> dict[str, Any]:
    """parameters.yaml with a quicker model, a test window long enough for a small shop,
    two backtest folds and ``trials`` tuning trials (no time limit: the same trials)."""
    params = load_parameters().model_dump(mode="json")
    params["model"]["catboost"].update({"iterations": 1000, **catboost})
    params["tuning"].update({"trials": trials, "timeout_seconds": 3600})
    params["evaluation"]["bootstrap_samples"] = 300
    params["split"].update({"test_days": 60, "validation_days": 30, "folds": 2})
    return params


def _store() -> Any:
    from orchestration.environment import current_environment
    from orchestration.resources import RegistryResource

    return RegistryResource.for_environment(current_environment())


def _registry() -> Any:
    return _store().open(load_parameters().registry)


@dataclass
class Snapshot:
    result: Any = None
    error: str | None = None
    champion: Any = None
    scores: pd.DataFrame | None = None
    audience: pd.DataFrame | None = None
    versions: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _snapshot(home: Path, result: Any = None, error: str | None = None) -> Snapshot:
    registry = _registry()
    con = connect(home / "warehouse.duckdb", read_only=True)
    try:
        scores = con.execute("select * from ml.customer_scores order by customer_id").df()
        audience = con.execute("select * from marts.campaign_audience order by audience_rank").df()
    finally:
        con.close()
    return Snapshot(
        result=result,
        error=error,
        champion=registry.champion(),
        scores=scores,
        audience=audience,
        versions=len(registry.versions()),
    )


class BrokenScorer:
    """A "model" whose scores are not probabilities: what the scores suite must stop."""

    name = "broken"
    is_probability = True

    def predict_proba(self, X: pd.DataFrame) -> Any:
        import numpy as np

        return np.full(len(X), 1.5)


def _promote_broken_scorer_and_score(home: Path) -> Snapshot:
    """Register and promote BrokenScorer, materialise customer_scores alone, then roll the
    alias back; returns the state after the rollback, with scoring's error and check."""
    import dagster as dg

    from orchestration.defs.scoring.assets import customer_scores
    from orchestration.mlflow_store import configure_mlflow
    from orchestration.resources import build_resources

    store = _store()
    configure_mlflow(store.tracking_uri)
    registry = store.open(load_parameters().registry)
    scorer = BrokenScorer()
    run_id = store.tracker(load_parameters().registry).log_run(
        run_name="broken",
        scorer=scorer,
        kind="model",
        params={},
        data_window={},
        metrics={},
        figures={},
        tables={},
        input_example=pd.DataFrame({"customer_id": [1]}),
        tags={},
    )
    registry.promote(registry.register(run_id), "test")
    from orchestration.environment import current_environment
    from orchestration.instance import instance

    with instance(current_environment()) as inst:
        # The date the pipeline runs before scored (a registered as-of partition).
        result = dg.materialize(
            [customer_scores],
            resources=build_resources(),
            instance=inst,
            partition_key=AS_OF.isoformat(),
            raise_on_error=False,
        )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.step_failure_data.error  # type: ignore[union-attr]
    (check,) = result.get_asset_check_evaluations()
    registry.rollback()
    snapshot = _snapshot(home, error=error.message if error else "")
    snapshot.extra["check"] = check
    return snapshot


@dataclass
class History:
    home: Path
    runs: dict[str, Snapshot]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    from click.testing import CliRunner

    from orchestration.cli import main
    from orchestration.pipeline import PipelineFailed, run_pipeline, run_retrain
    from thelook import simulator

    home = tmp_path_factory.mktemp("pipeline") / "home"
    parameters = home.parent / "parameters.yaml"
    worse = home.parent / "worse.yaml"
    parameters.write_text(yaml.safe_dump(_test_parameters()))
    # CatBoost alone, untuned, with one tree of depth one: a worse candidate.
    worse_params = _test_parameters(trials=1, iterations=1, depth=1)
    worse_params["challenger"]["enabled"] = False
    worse_params["online"]["enabled"] = False
    worse.write_text(yaml.safe_dump(worse_params))
    runs: dict[str, Snapshot] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXTBUY_HOME", str(home))
        mp.setenv("NEXTBUY_PARAMETERS", str(parameters))
        # MLflow writes the store it is pointed at into these; they leave with the module.
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        home.mkdir()
        con = connect(home / "warehouse.duckdb")
        params = load_parameters()
        settings = params.simulation.with_overrides(**SHOP, **LOYAL)
        simulator.simulate(con, settings, params.campaign.target_brands)
        con.close()

        runs["first"] = _snapshot(home, run_pipeline(AS_OF, full_refresh=True))
        # The features are those of the first run: retraining alone is enough.
        runs["again"] = _snapshot(home, run_retrain(AS_OF))
        mp.setenv("NEXTBUY_PARAMETERS", str(worse))
        runs["worse"] = _snapshot(home, run_retrain(AS_OF))
        mp.setenv("NEXTBUY_PARAMETERS", str(parameters))

        runs["rolled_back"] = _promote_broken_scorer_and_score(home)
        runs.update(_daily_loop(home))

        target = load_parameters().campaign.target_brands[0]
        con = connect(home / "warehouse.duckdb")
        con.execute("update raw.products set brand = ?", [target])
        con.close()
        with pytest.raises(PipelineFailed) as failed:
            # An incremental run: a catalogue change rebuilds the customers who bought
            # the changed products (here everyone), even one made behind the loader's back.
            run_pipeline(AS_OF)
        runs["bad_data"] = _snapshot(home, error=str(failed.value))
        retrain = CliRunner().invoke(main, ["retrain"])
        runs["retrain_cli"] = _snapshot(home, retrain.output, f"exit {retrain.exit_code}")
        # A week on, the schedule asks for a retrain; the failing checks still block it.
        from orchestration.environment import current_environment
        from orchestration.tick import tick

        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)
        runs["scheduled_retrain"] = _snapshot(home, tick(current_environment(), now=later))
        yield History(home=home, runs=runs)


def _daily_loop(home: Path) -> dict[str, Snapshot]:
    """New days land; `nextbuy tick` runs `daily` for exactly those (with the champion the
    rollback left); a second tick runs nothing; then a full refresh of the same data."""
    from click.testing import CliRunner

    from orchestration.cli import main
    from orchestration.pipeline import run_job
    from thelook import simulator

    con = connect(home / "warehouse.duckdb")
    before = {r[0] for r in con.execute(_PARTITION_STATES).fetchall()}
    appended = simulator.append_days(con, 2)
    after = {r[0] for r in con.execute(_PARTITION_STATES).fetchall()}
    con.close()
    changed = sorted({state.split("@")[0] for state in after - before})
    out: dict[str, Snapshot] = {}
    runner = CliRunner()
    first = runner.invoke(main, ["tick"])
    out["daily"] = _snapshot(home, first.output, None if first.exit_code == 0 else first.output)
    out["daily"].extra.update(appended=appended, changed=changed)
    out["daily"].extra["marts"] = _marts(home)
    second = runner.invoke(main, ["tick"])
    out["tick_again"] = _snapshot(home, second.output)
    as_of = dt.date.fromisoformat(str(out["daily"].audience["as_of"].iloc[0])[:10])
    run_job("features", as_of, full_refresh=True)
    run_job("daily", as_of)
    out["daily_full"] = _snapshot(home)
    out["daily_full"].extra["marts"] = _marts(home)
    return out


_PARTITION_STATES = (
    "select partition_id || '@' || last_modified_time from meta.partitions "
    "where table_name = 'order_items'"
)


def _marts(home: Path) -> dict[str, pd.DataFrame]:
    con = connect(home / "warehouse.duckdb", read_only=True)
    try:
        return {
            "training_examples": con.execute(
                "select * exclude (_source_modified_at) from marts.training_examples "
                "order by customer_id, order_id"
            ).df(),
            "customer_features": con.execute(
                "select * from marts.customer_features order by customer_id"
            ).df(),
        }
    finally:
        con.close()


@pytest.fixture
def home(history: History, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point this test's environment at the history's home (conftest isolates each test)."""
    monkeypatch.setenv("NEXTBUY_HOME", str(history.home))
    return history.home


def test_first_run_reports_metrics_against_baselines_and_the_truth(history: History) -> None:
    report = history.runs["first"].result.report
    assert {
        "auc",
        "best_baseline",
        "best_baseline_auc",
        "oracle_auc",
        "lift_at_10",
        "champion",
        "promoted",
        "reason",
    } <= report.keys()
    json.dumps(report)
    # The simulator plants learnable behaviour: the model beats the rules, the truth
    # beats the model.
    assert 0.5 < report["best_baseline_auc"] < report["auc"] < report["oracle_auc"] <= 1
    assert report["lift_at_10"] > 1
    assert report["promoted"] is True, report["reason"]
    assert report["champion"] == report["candidate"]
    metrics = history.runs["first"].result.metrics
    assert {"catboost", "logistic", "overall_rate", "oracle", "ceiling"} <= set(metrics.index)
    # The backtest, its power, the observable ceiling and the truth's expected AUC.
    assert report["folds"] == 2 and report["test_rows"] == int(metrics.loc["catboost", "n"])
    assert 0 < report["detectable_difference"] < 0.2
    low, high = report["auc_interval"]
    assert low < report["auc"] < high and high - low < 0.2
    assert 0 < report["test_customers"] <= report["test_rows"]
    assert report["per_fold_metric"] == "roc_auc"
    assert {"catboost", "logistic", "rate_by_gender"} <= report["per_fold"].keys()
    assert all(len(values) == 2 for values in report["per_fold"].values())
    assert report["candidate_model"] in ("catboost", "logistic")
    assert report["best_baseline_auc"] < report["ceiling_auc"] < report["oracle_auc"]
    assert 0.5 < report["ceiling_share"] <= 1.2
    assert report["expected_auc"] == pytest.approx(
        float(metrics.loc[report["candidate_model"], "expected_roc_auc"]), abs=1e-4
    )
    assert "every fold's roc_auc unchanged" in report["calibration"]
    assert {"roc_auc", "pr_auc", "log_loss", "brier", "lift_at_10", "lift_at_20"} <= set(
        metrics.columns
    )


def test_scores_and_audience_are_written_for_every_customer(history: History, home: Path) -> None:
    first = history.runs["first"]
    scores, audience = first.scores, first.audience
    assert scores is not None and audience is not None
    con = connect(home / "warehouse.duckdb", read_only=True)
    try:
        customers = con.execute("select count(*) from marts.customer_features").fetchone()
    finally:
        con.close()
    assert customers is not None and len(scores) == customers[0] > 1000
    assert scores["customer_id"].is_unique
    assert set(scores["as_of"].astype(str)) == {AS_OF.isoformat()}
    assert scores["score"].between(0, 1).all()
    assert sorted(scores["decile"].unique()) == list(range(1, 11))
    assert scores.groupby("decile")["score"].min().is_monotonic_decreasing
    champion = first.champion
    assert set(scores["model_version"].astype(str)) == {str(champion.version)}
    # The audience is the top 10% by score, best first (equal scores ordered by
    # target-brand share, then recency, then id).
    assert len(audience) == pytest.approx(len(scores) * 0.10, abs=1)
    left_out = scores[~scores["customer_id"].isin(audience["customer_id"])]
    assert audience["score"].min() >= left_out["score"].astype("float32").max()
    key = ["score", "prior_target_brand_share", "days_since_last_order", "customer_id"]
    best_first = audience.sort_values(key, ascending=[False, False, True, True])
    assert audience["customer_id"].tolist() == best_first["customer_id"].tolist()
    assert audience["prior_target_brand_share"].notna().all()
    assert first.result.scored == len(scores) and first.result.audience == len(audience)


def test_dbt_assets_show_row_counts_column_types_and_the_audience_cut(
    history: History, home: Path
) -> None:
    import dagster as dg

    from orchestration.environment import current_environment
    from orchestration.instance import instance

    con = connect(home / "warehouse.duckdb", read_only=True)
    try:
        audience = con.execute("select count(*) from marts.campaign_audience").fetchone()
        features = con.execute("select count(*) from marts.customer_features").fetchone()
        # The audience's date need not be the features' (the bad-data run rebuilt the
        # features of an earlier date and was stopped before scoring).
        scored = con.execute(
            "select count(*) from ml.customer_scores where as_of = "
            "(select max(as_of) from marts.campaign_audience)"
        ).fetchone()
    finally:
        con.close()
    with instance(current_environment()) as inst:
        latest = {
            name: inst.get_latest_materialization_event(dg.AssetKey(["marts", name]))
            for name in ("campaign_audience", "customer_features")
        }
    metadata = {
        name: {k: v.value for k, v in event.asset_materialization.metadata.items()}  # type: ignore[union-attr]
        for name, event in latest.items()
        if event is not None
    }
    assert audience is not None and features is not None and scored is not None
    assert metadata["customer_features"]["dagster/row_count"] == features[0]
    assert metadata["campaign_audience"]["dagster/row_count"] == audience[0]
    columns = {
        c.name: c.type.lower()
        for c in metadata["customer_features"]["dagster/column_schema"].columns
    }
    assert columns["customer_id"] == "bigint" and columns["as_of"] == "timestamp"
    cut = metadata["campaign_audience"]
    assert cut["customers"] == audience[0] and cut["scored_customers"] == scored[0]
    assert cut["tied_at_cut"] >= cut["admitted_at_cut"] >= 1
    assert cut["cut"].startswith(f"{audience[0]:,} of {scored[0]:,} scored customers")


def test_scoring_twice_gives_the_same_table(history: History) -> None:
    first, again = history.runs["first"], history.runs["again"]
    assert again.champion == first.champion
    assert first.scores is not None and again.scores is not None
    columns = [c for c in first.scores.columns if c != "scored_at"]
    pd.testing.assert_frame_equal(first.scores[columns], again.scores[columns])
    assert (again.scores["scored_at"] >= first.scores["scored_at"]).all()
    assert again.audience is not None and first.audience is not None
    assert again.audience["customer_id"].tolist() == first.audience["customer_id"].tolist()


def test_a_candidate_equal_to_the_champion_is_not_promoted(history: History) -> None:
    report = history.runs["again"].result.report
    # Same data, same parameters, same seed: the same model.
    assert report["auc"] == history.runs["first"].result.report["auc"]
    assert report["promoted"] is False
    assert report["reason"].startswith("not promoted: no better than champion (roc_auc +0.0000")
    # Every candidate is registered, promoted or not.
    assert history.runs["again"].versions == history.runs["first"].versions + 1


def test_the_gate_refuses_a_worse_candidate(history: History) -> None:
    first, worse = history.runs["first"], history.runs["worse"]
    report = worse.result.report
    assert report["promoted"] is False
    assert report["auc"] < history.runs["first"].result.report["auc"]
    assert f"the champion stays {first.champion.label()}" in report["reason"]
    assert worse.champion == first.champion
    assert worse.scores is not None and first.scores is not None
    assert set(worse.scores["model_version"].astype(str)) == {str(first.champion.version)}


def test_bad_data_is_blocked_by_the_expectation_suite_and_nothing_changes(
    history: History,
) -> None:
    # The daily loop ran in between; its last state is what bad data must leave alone.
    before, after = history.runs["daily_full"], history.runs["bad_data"]
    assert after.error is not None
    assert "gx_training_examples" in after.error
    assert "expect_column_mean_to_be_between" in after.error and "label" in after.error
    assert "candidate_model" in after.error  # named among the steps that did not run
    assert after.champion == before.champion
    assert after.versions == before.versions
    assert before.scores is not None and after.scores is not None
    pd.testing.assert_frame_equal(before.scores, after.scores)
    assert before.audience is not None and after.audience is not None
    # `nextbuy retrain` on those features is blocked too, and says what stays.
    cli = history.runs["retrain_cli"]
    assert cli.error == "exit 1" and "retrain failed" in cli.result
    assert "gx_training_examples" in cli.result and "stay in place" in cli.result
    assert cli.versions == after.versions and cli.champion == after.champion
    pd.testing.assert_frame_equal(before.audience, after.audience)


def test_scores_that_fail_their_suite_are_not_published_and_rollback_restores(
    history: History,
) -> None:
    worse, rolled_back = history.runs["worse"], history.runs["rolled_back"]
    assert "ml.customer_scores is unchanged" in (rolled_back.error or "")
    check = rolled_back.extra["check"]
    assert check.check_name == "gx_customer_scores" and not check.passed
    assert "expect_column_values_to_be_between on score" in (check.description or "")
    assert worse.scores is not None and rolled_back.scores is not None
    pd.testing.assert_frame_equal(worse.scores, rolled_back.scores)
    # The broken version stays registered, but the alias is back on the champion before it.
    assert rolled_back.versions == worse.versions + 1
    assert rolled_back.champion == worse.champion


def test_every_asset_is_described_grouped_and_lineage_starts_at_raw(home: Path) -> None:
    import dagster as dg

    from orchestration.definitions import build_definitions

    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert {"sources", "features", "training", "scoring"} <= groups
    for key in graph.get_all_asset_keys():
        assert graph.get(key).description, f"{key.to_user_string()} has no description"
    # The raw tables' columns carry the descriptions of dbt's sources YAML.
    for table in ("users", "orders", "order_items", "products"):
        schema = graph.get(dg.AssetKey(["raw", table])).metadata["dagster/column_schema"]
        assert all(c.description for c in schema.columns), table
    # Every check says what it checks: GX suites, monitoring, and each dbt test (its dbt
    # description, or its kind, column and model).
    checks = [graph.get_check_spec(key) for key in graph.asset_check_keys]
    assert len(checks) > 50
    undescribed = [spec.key.to_user_string() for spec in checks if not spec.description]
    assert not undescribed, undescribed
    leakage = next(s for s in checks if s.name == "assert_features_see_only_earlier_purchases")
    assert leakage.description and "leak" in leakage.description.lower()
    audience = dg.AssetKey(["marts", "campaign_audience"])
    upstream = graph.upstream_key_iterator(audience)
    ancestors = set()
    stack = list(upstream)
    while stack:
        key = stack.pop()
        if key not in ancestors:
            ancestors.add(key)
            stack.extend(graph.get(key).parent_keys)
    assert {
        dg.AssetKey(["raw", "order_items"]),
        dg.AssetKey(["marts", "training_examples"]),
        dg.AssetKey("champion_model"),
        dg.AssetKey(["ml", "customer_scores"]),
    } <= ancestors
    checks = {k.name for k in graph.asset_check_keys}
    assert {"gx_training_examples", "gx_customer_features", "gx_customer_scores"} <= checks


def test_the_candidate_run_is_in_mlflow_with_metrics_and_plots(
    history: History, home: Path
) -> None:
    registry = _registry()
    candidate = history.runs["first"].champion
    run = registry.client.get_run(candidate.run_id)
    assert run.data.metrics["roc_auc"] == pytest.approx(
        history.runs["first"].result.report["auc"], abs=1e-4
    )
    assert "baseline.rate_by_gender.roc_auc" in run.data.metrics
    report = history.runs["first"].result.report
    assert run.data.params["data.backtest_test_examples"] == str(report["test_rows"])
    assert int(run.data.params["data.test_examples"]) < report["test_rows"]  # newest fold
    tracker = _store().tracker(load_parameters().registry)
    # The search: every trial a child run of the candidate's run, the winner's settings
    # recorded with the model.
    trials = registry.client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{candidate.run_id}'",
    )
    assert len(trials) == 2 == int(run.data.params["tuning.trials_run"])
    assert {"value", "trees", "seconds"} <= trials[0].data.metrics.keys()
    assert {"depth", "learning_rate", "l2_leaf_reg"} <= trials[0].data.params.keys()
    best = max(trials, key=lambda t: t.data.metrics["value"])
    assert run.data.params["model.depth"] == best.data.params["depth"]
    assert {"ml_test_score.md", "ml_test_score.json"} <= {
        a.path for a in registry.client.list_artifacts(candidate.run_id)
    }
    figures = Path(tracker.artifact_uri(candidate.run_id).removeprefix("file://")) / "figures"
    assert {p.name for p in figures.iterdir()} >= {"roc.png", "gains.png", "calibration.png"}
    # The gate's decision is kept on the version.
    version = registry.client.get_model_version(candidate.name, candidate.version)
    assert version.tags["gate.promote"] == "true"


def test_tick_runs_daily_for_exactly_the_new_days_dated_by_the_data(history: History) -> None:
    daily = history.runs["daily"]
    assert daily.error is None, daily.error
    appended = daily.extra["appended"]
    # One run, for exactly the partitions the append wrote (new days, and the days whose
    # future-dated items it rewrote), dated the day after the newest complete day.
    # One features run over exactly those day partitions, then one daily run for the date.
    assert daily.result.count("-> features run") == 1
    assert daily.result.count("-> daily run") == 1
    changed = daily.extra["changed"]
    assert changed and changed[-1] > appended.end.strftime("%Y%m%d") >= changed[0]
    newest = max(dt.datetime.strptime(p, "%Y%m%d").date() for p in changed)
    as_of = newest + dt.timedelta(days=1)
    assert f"as_of {as_of.isoformat()}" in daily.result
    # The features run covered those days: one key or a range of order_items_days keys
    # (registered in the order runs met them, so a range may hold a day seen before).
    keys = _features_run_keys(history.home)
    assert set(changed) <= set(keys) and len(keys) <= len(changed) + 1
    # No training: the champion is still the one the rollback restored, and it scored.
    rolled_back = history.runs["rolled_back"].champion
    assert daily.champion == rolled_back
    assert daily.versions == history.runs["rolled_back"].versions
    new = daily.scores[daily.scores["as_of"].astype(str).str[:10] == as_of.isoformat()]
    assert len(new) > 0 and set(new["model_version"]) == {rolled_back.version}
    # The audience is that date's.
    assert set(daily.audience["as_of"].astype(str).str[:10]) == {as_of.isoformat()}


def _features_run_keys(home: Path) -> list[str]:
    """The order_items_days keys of the newest `features` run a sensor requested."""
    import dagster as dg

    from orchestration.environment import current_environment
    from orchestration.partitions import ORDER_ITEMS_DAYS

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXTBUY_HOME", str(home))
        from orchestration.instance import instance

        with instance(current_environment()) as inst:
            (run,) = inst.get_runs(
                dg.RunsFilter(
                    job_name="features", tags={"dagster/sensor_name": "order_items_partitions"}
                ),
                limit=1,
            )
            registered = inst.get_dynamic_partitions(ORDER_ITEMS_DAYS.name or "")
    if "dagster/partition" in run.tags:
        return [run.tags["dagster/partition"]]
    start = registered.index(run.tags["dagster/asset_partition_range_start"])
    end = registered.index(run.tags["dagster/asset_partition_range_end"])
    return registered[start : end + 1]


def test_a_second_tick_over_the_same_state_runs_nothing(history: History) -> None:
    again = history.runs["tick_again"].result
    assert "nothing to do" in again and "-> daily run" not in again
    assert "-> features run" not in again
    assert "no new or changed day partition" in again


def test_the_daily_run_gives_the_marts_and_scores_of_a_full_refresh(history: History) -> None:
    incremental, full = history.runs["daily"], history.runs["daily_full"]
    for name, frame in incremental.extra["marts"].items():
        pd.testing.assert_frame_equal(frame, full.extra["marts"][name], check_like=True)
    as_of = str(incremental.audience["as_of"].iloc[0])[:10]

    def scores(snapshot: Snapshot) -> pd.DataFrame:
        frame = snapshot.scores
        frame = frame[frame["as_of"].astype(str).str[:10] == as_of]
        return frame.drop(columns=["scored_at"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(scores(incremental), scores(full))


def test_the_weekly_schedule_requests_a_retrain_that_failed_checks_block(
    history: History,
) -> None:
    scheduled = history.runs["scheduled_retrain"]
    retrains = [r for r in scheduled.result.runs if r.job == "retrain"]
    assert [r.requested_by for r in retrains] == ["schedule weekly_retrain"]
    (retrain,) = retrains
    assert not retrain.success
    assert "check gx_training_examples on marts/training_examples failed" in retrain.error
    assert "candidate_model" in retrain.error.split("not materialised")[1]
    # Nothing was trained or promoted, and no daily run was asked for: no partition changed.
    assert scheduled.versions == history.runs["bad_data"].versions
    assert scheduled.champion == history.runs["bad_data"].champion
    assert all(r.job != "daily" for r in scheduled.result.runs)
