"""Realised performance and the monitoring report (orchestration/defs/monitoring/
{realised,report}.py, dbt's score_outcomes) on two simulated shops with a real DuckDB
file, a real MLflow store and a real Dagster instance.

The champion is the gender rule, fitted on the purchases before April 2026 and evaluated
on April-June (pre-campaign): what training would have logged. It scores the customers of
three dates: two in the campaign with their outcomes complete (30 days observed), one
with ten days observed (pending customers). On the behavioural shop the default campaign
(from July, target brands weigh 2x in non-favourite draws) raises the target-brand rate
the rule was calibrated on; on a thelook-mode shop (brands drawn at random, no campaign)
nothing moves. The campaign shop is also judged under a strict policy, whose ERROR asks
the sensor for a retrain.

Outcomes are computed independently in pandas from raw (DESIGN.md's purchase and label,
vectorised); dbt's score_outcomes is held against them on the behavioural shop, and the
stationary shop's table is written from them directly (one dbt build fewer).

The behavioural shop's customers of the judged date were also scored online, twice: first
with inverted scores, then with the batch's own, which, being the latest request, are the
ones judged: their realised figures must be the batch's. A few customers of the newest
date scored online are too few to be judged.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.baselines import RateByGroup
from ml.metrics import evaluate, lift_at_top, roc_auc
from orchestration.dbt import run_dbt
from orchestration.defs.monitoring.online import ONLINE_PREDICTIONS
from orchestration.defs.monitoring.realised import (
    SCORE_OUTCOMES,
    realised_performance_asset,
)
from orchestration.defs.monitoring.reference import record_drift_reference
from orchestration.defs.monitoring.report import monitoring_report
from orchestration.defs.monitoring.sensors import (
    PERFORMANCE_ALERT_RUN_TAG,
    PERFORMANCE_TAG,
    retrain_on_drift,
)
from orchestration.defs.scoring.assets import SCORES_TABLE, deciles
from orchestration.resources import ParametersResource, RegistryResource, WarehouseResource
from orchestration.settings import load_parameters, parameters_path
from tests.dbt_project.notebook_features import read_raw, repair_text

# The MLflow store of test_registry (autouse, module-scoped): MLflow's configured store
# while this module runs, put back afterwards.
from tests.orchestration.test_registry import _log, store  # noqa: F401
from thelook.simulator import simulate
from thelook.warehouse import connect

PARAMS = load_parameters()
MONITORING = PARAMS.monitoring
HORIZON = pd.Timedelta(days=MONITORING.label_horizon_days)
# Large enough for min_labelled (1,000) customers to order within the horizon of a date.
SHOP = {"users": 40_000, "start": dt.date(2023, 1, 1), "end": dt.date(2026, 9, 30), "seed": 3}
TRAIN_END, TEST_END = pd.Timestamp("2026-04-01"), pd.Timestamp("2026-07-01")
DATES = [dt.date(2026, 8, 1), dt.date(2026, 8, 15), dt.date(2026, 9, 20)]
JUDGED, NEWEST = DATES[1], DATES[2]


def _purchases(raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Orders with a non-cancelled item, timed by the order (by its first item without an
    orders row), numbered per customer by (time, id); label 1 when a non-cancelled item is
    of a target brand."""
    brands = raw["products"].drop_duplicates("id").set_index("id")["brand"].map(repair_text)
    items = raw["order_items"]
    kept = items["status"].astype("string").str.strip().ne("Cancelled").fillna(True)
    target = items["product_id"].map(brands).isin(PARAMS.campaign.target_brands) & kept
    orders = (
        items.assign(kept=kept, target=target)
        .groupby("order_id")
        .agg(
            customer_id=("user_id", "min"),
            first_item_at=("created_at", "min"),
            kept=("kept", "sum"),
            label=("target", "max"),
        )
    )
    orders = orders[orders["kept"] > 0].reset_index()
    ordered_at = raw["orders"].drop_duplicates("order_id").set_index("order_id")["created_at"]
    orders["ordered_at"] = orders["order_id"].map(ordered_at).fillna(orders["first_item_at"])
    orders["label"] = orders["label"].astype("int64")
    orders = orders.sort_values(["customer_id", "ordered_at", "order_id"])
    orders["order_number"] = orders.groupby("customer_id").cumcount() + 1
    return orders.reset_index(drop=True)


def _outcomes(purchases: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """score_outcomes the pandas way: each scored customer's first purchase from the start
    of the as-of day on."""
    observed_until = purchases["ordered_at"].max()
    rows = []
    for as_of, group in scores.groupby("as_of"):
        start = pd.Timestamp(str(as_of))
        later = purchases[purchases["ordered_at"] >= start]
        first = later.sort_values(["customer_id", "ordered_at", "order_id"]).drop_duplicates(
            "customer_id"
        )
        merged = group.merge(
            first[["customer_id", "order_id", "ordered_at", "label"]],
            on="customer_id",
            how="left",
        )
        rows.append(
            merged.assign(
                next_order_id=merged["order_id"],
                next_ordered_at=merged["ordered_at"],
                next_order_has_target_brand=merged["label"],
                days_to_next_order=(merged["ordered_at"] - start) / pd.Timedelta(days=1),
                observed_until=observed_until,
                days_observed=(observed_until - start) / pd.Timedelta(days=1),
            ).drop(columns=["order_id", "ordered_at", "label", "scored_at"])
        )
    return pd.concat(rows, ignore_index=True)


@dataclass
class Shop:
    warehouse: Path
    resources: dict[str, Any]
    instance: dg.DagsterInstance
    # The pandas outcomes of every scored customer and date.
    outcomes: pd.DataFrame
    champion: str
    results: dict[str, dg.ExecuteInProcessResult]
    # The sensor's answer after each materialisation.
    sensor: dict[str, Any]

    def metadata(self, name: str) -> dict[str, Any]:
        (event,) = self.results[name].get_asset_materialization_events()
        materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
        return {k: v.value for k, v in materialization.metadata.items()}

    def check(self, name: str = "realised") -> tuple[dg.AssetCheckEvaluation, dict[str, Any]]:
        (evaluation,) = self.results[name].get_asset_check_evaluations()
        return evaluation, {k: v.value for k, v in evaluation.metadata.items()}


def _build_shop(folder: Path, mode: str, model_name: str, store: str) -> Shop:  # noqa: F811
    from orchestration.registry import Registry
    from orchestration.tracking import Tracker

    warehouse = folder / f"{mode}.duckdb"
    con = connect(warehouse)
    simulate(
        con, PARAMS.simulation.with_overrides(**SHOP, mode=mode), PARAMS.campaign.target_brands
    )
    raw = read_raw(con)
    con.close()
    purchases = _purchases(raw)
    gender = raw["users"].set_index("id")["gender"]
    purchases["gender"] = purchases["customer_id"].map(gender)

    # The champion: the gender rule as training would have fitted and measured it.
    examples = purchases[purchases["order_number"] >= 2]
    train = examples[examples["ordered_at"] < TRAIN_END]
    test = examples[(examples["ordered_at"] >= TRAIN_END) & (examples["ordered_at"] < TEST_END)]
    rule = RateByGroup("gender").fit(train, train["label"])
    measured = evaluate(
        test["label"],
        rule.predict_proba(test),
        top_k_percents=PARAMS.evaluation.top_k_percents,
        min_slice_positives=1,
    )
    tracker = Tracker(store, experiment=PARAMS.registry.experiment)
    registry = Registry(store, model_name=model_name, alias=PARAMS.registry.champion_alias)
    run_id = _log(tracker, rule, train, metrics=measured.overall, run_name=f"{mode}-rule")
    ref = registry.register(run_id)
    registry.promote(ref, "test")

    scored = []
    for as_of in DATES:
        customers = purchases.loc[purchases["ordered_at"] < pd.Timestamp(as_of), "customer_id"]
        frame = pd.DataFrame({"customer_id": np.sort(customers.unique())})
        frame["gender"] = frame["customer_id"].map(gender)
        score = rule.predict_proba(frame)
        scored.append(
            pd.DataFrame(
                {
                    "customer_id": frame["customer_id"],
                    "score": score,
                    "decile": deciles(score, PARAMS.scoring.deciles),
                    "model_name": model_name,
                    "model_version": ref.version,
                    "as_of": as_of,
                    "scored_at": pd.Timestamp("2026-10-01"),
                }
            )
        )
    scores = pd.concat(scored, ignore_index=True)
    outcomes = _outcomes(purchases, scores)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema if not exists ml")
        con.execute(f"create table {SCORES_TABLE} as select * from scores")
        if mode == "thelook":
            con.execute("create schema if not exists marts")
            con.execute(
                f"create table {SCORE_OUTCOMES} as select *, 'batch' as source from outcomes"
            )
        else:
            online = _online_predictions(scores)  # noqa: F841 (read by DuckDB)
            con.execute(f"create table {ONLINE_PREDICTIONS} as select * from online")
    warehouse_resource = WarehouseResource(path=str(warehouse))
    resources = {
        "warehouse": warehouse_resource,
        "parameters": ParametersResource(path=str(_parameters(folder, model_name))),
        "registry": RegistryResource(tracking_uri=store),
    }
    if mode == "behavioural":
        run_dbt(
            ["run", "--select", "+score_outcomes +customer_features"],
            warehouse=warehouse,
            vars={"as_of": NEWEST.isoformat()},
        )
        record_drift_reference(warehouse_resource, tracker.client, run_id, rule, PARAMS)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("as_of_dates", [d.isoformat() for d in DATES])
    return Shop(warehouse, resources, instance, outcomes, ref.label(), {}, {})


ONLINE_FEW = 50


def _online_predictions(scores: pd.DataFrame) -> pd.DataFrame:
    """Every customer of the judged date asked for at 08:00 (inverted scores) and 09:00
    (the batch's scores); ONLINE_FEW customers of the newest date at 09:00."""
    judged = scores[scores["as_of"] == JUDGED]
    newest = scores[scores["as_of"] == NEWEST].head(ONLINE_FEW)
    requests = [
        (judged, 1 - judged["score"], 8),
        (judged, judged["score"], 9),
        (newest, newest["score"], 9),
    ]
    return pd.DataFrame(
        {
            "customer_id": pd.concat([rows["customer_id"] for rows, _, _ in requests]),
            "as_of": pd.concat([rows["as_of"] for rows, _, _ in requests]),
            "features_hash": "hash",
            "score": pd.concat([score for _, score, _ in requests]),
            "model_name": pd.concat([rows["model_name"] for rows, _, _ in requests]),
            "model_version": pd.concat([rows["model_version"] for rows, _, _ in requests]),
            "path": "features",
            "requested_at": pd.concat(
                [
                    pd.Series(pd.Timestamp(str(rows["as_of"].iloc[0])), index=rows.index)
                    + pd.Timedelta(hours=hour)
                    for rows, _, hour in requests
                ]
            ),
        }
    ).reset_index(drop=True)


# A stricter policy than parameters.yaml's, under which the campaign's miscalibration is
# a failure.
STRICT = {"warn_calibration_error": 0.05, "fail_calibration_error": 0.1}


def _parameters(folder: Path, model_name: str, **monitoring: float) -> Path:
    """parameters.yaml with this shop's registered model name (one store, two models) and
    ``monitoring`` settings changed."""
    import yaml

    raw = yaml.safe_load(parameters_path().read_text())
    raw["registry"]["model_name"] = model_name
    raw["monitoring"].update(monitoring)
    path = folder / f"parameters-{model_name}-{len(monitoring)}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _materialise(
    shop: Shop, name: str, asset: Any, as_of: dt.date, parameters: Path | None = None
) -> None:
    resources = dict(shop.resources)
    if parameters is not None:
        resources["parameters"] = ParametersResource(path=str(parameters))
    shop.results[name] = dg.materialize(
        [asset], resources=resources, instance=shop.instance, partition_key=as_of.isoformat()
    )
    shop.sensor[name] = retrain_on_drift(dg.build_sensor_context(instance=shop.instance))


@pytest.fixture(scope="module")
def shops(
    store: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Shop]]:
    folder = tmp_path_factory.mktemp("shops")
    with pytest.MonkeyPatch.context() as patch:
        # The report is written under NEXTBUY_HOME: the module's, not the developer's.
        patch.setenv("NEXTBUY_HOME", str(folder / "home"))
        built = {
            "campaign": _build_shop(folder, "behavioural", "campaign-shop", store),
            "stationary": _build_shop(folder, "thelook", "stationary-shop", store),
        }
        for shop in built.values():
            _materialise(shop, "realised", realised_performance_asset, NEWEST)
        campaign = built["campaign"]
        _materialise(campaign, "report", monitoring_report, NEWEST)
        strict = _parameters(folder, "campaign-shop", **STRICT)
        _materialise(campaign, "strict", realised_performance_asset, NEWEST, strict)
        yield built


def test_score_outcomes_are_the_next_purchase_after_the_as_of_day(
    shops: dict[str, Shop],
) -> None:
    shop = shops["campaign"]
    with duckdb.connect(str(shop.warehouse), read_only=True) as con:
        everything = con.execute(f"select * from {SCORE_OUTCOMES}").df()
    built = everything[everything["source"] == "batch"].drop(columns="source")
    built["as_of"] = pd.to_datetime(built["as_of"]).dt.date
    keys = ["as_of", "customer_id"]
    built = built.sort_values(keys).reset_index(drop=True)
    expected = shop.outcomes.sort_values(keys).reset_index(drop=True)
    assert len(built) == len(expected) == expected[keys].drop_duplicates().shape[0]
    pd.testing.assert_series_equal(built["customer_id"], expected["customer_id"])
    pd.testing.assert_series_equal(
        built["next_order_id"].astype("Int64"), expected["next_order_id"].astype("Int64")
    )
    pd.testing.assert_series_equal(
        built["next_order_has_target_brand"].astype("Int64"),
        expected["next_order_has_target_brand"].astype("Int64"),
    )
    for column in ("days_to_next_order", "days_observed"):
        np.testing.assert_allclose(built[column], expected[column], atol=1e-6)
    # Some customers have no purchase yet, and every date has some with one.
    assert built["next_order_id"].isna().any()
    assert built.groupby("as_of")["next_order_id"].count().min() > 0
    # Online scores: one row per customer and date (the latest request), the same outcome.
    online = everything[everything["source"] == "online"].drop(columns="source")
    online["as_of"] = pd.to_datetime(online["as_of"]).dt.date
    assert len(online) == len(built[built["as_of"] == JUDGED]) + ONLINE_FEW
    same = online.merge(built, on=keys, suffixes=("", "_batch"), validate="1:1")
    assert len(same) == len(online)
    np.testing.assert_allclose(same["score"], same["score_batch"])
    pd.testing.assert_series_equal(
        same["next_order_id"].astype("Int64"),
        same["next_order_id_batch"].astype("Int64"),
        check_names=False,
    )


def _expected(shop: Shop, as_of: dt.date) -> dict[str, Any]:
    """What the asset should report for one date, from the pandas outcomes."""
    rows = shop.outcomes[shop.outcomes["as_of"] == as_of]
    labelled = rows[rows["days_to_next_order"] < MONITORING.label_horizon_days]
    y = labelled["next_order_has_target_brand"].to_numpy(dtype=np.float64)
    score = labelled["score"].to_numpy(dtype=np.float64)
    observed = rows["days_observed"].iloc[0] >= MONITORING.label_horizon_days
    return {
        "scored": len(rows),
        "labelled": len(labelled),
        "pending": 0 if observed else len(rows) - len(labelled),
        "unlabelled": len(rows) - len(labelled) if observed else 0,
        "positive_rate": y.mean(),
        "mean_score": score.mean(),
        "roc_auc": roc_auc(y, score),
        "lift_at_10": lift_at_top(y, score, 10),
    }


def test_the_partition_date_is_reported_with_its_pending_customers(
    shops: dict[str, Shop],
) -> None:
    shop = shops["campaign"]
    metadata = shop.metadata("realised")
    expected = _expected(shop, NEWEST)
    assert metadata["as_of"] == NEWEST.isoformat()
    assert metadata["champion"] == shop.champion
    assert metadata["dagster/row_count"] == expected["scored"]
    for name in ("scored", "labelled", "pending", "unlabelled"):
        assert metadata[name] == expected[name], name
    # Ten days observed: many customers are still pending, nobody is unlabelled yet.
    assert metadata["pending"] > metadata["labelled"] > 0 and metadata["unlabelled"] == 0
    assert metadata["positive_rate"] == pytest.approx(expected["positive_rate"])
    assert metadata["summary"].startswith(f"as of {NEWEST}: {metadata['labelled']:,} of ")
    assert metadata["dates"] == len(DATES)
    # Every date's figures, newest first.
    table = metadata["by_date"]
    assert table.index(str(NEWEST)) < table.index(str(JUDGED)) < table.index(str(DATES[0]))
    # Online scores are judged on the one date with min_labelled labelled online customers.
    assert metadata["online_dates"] == 1 and "online_roc_auc" in table


def test_online_scores_are_judged_beside_the_batch(shops: dict[str, Shop]) -> None:
    from orchestration.defs.monitoring.realised import load_performance

    shop = shops["campaign"]
    params = shop.resources["parameters"].load()
    reg = shop.resources["registry"].open(params.registry)
    performance = load_performance(shop.resources["warehouse"], reg, params, NEWEST)
    (online,) = performance.online.to_dict("records")
    expected = _expected(shop, JUDGED)
    # The latest request of each customer is judged: the batch's scores, not the inverted.
    assert online["as_of"] == JUDGED
    assert online["n_labelled"] == expected["labelled"]
    assert online["roc_auc"] == pytest.approx(expected["roc_auc"])
    assert online["lift_at_10"] == pytest.approx(expected["lift_at_10"])
    page = Path(shop.metadata("report")["report"]).read_text(encoding="utf-8")
    assert "online_roc_auc" in page


def test_the_campaign_is_flagged_by_the_performance_check(shops: dict[str, Shop]) -> None:
    shop = shops["campaign"]
    evaluation, metadata = shop.check()
    expected = _expected(shop, JUDGED)
    # The newest date with 1,000 labelled customers is judged, against the rule's test window.
    assert expected["labelled"] >= MONITORING.min_labelled > _expected(shop, NEWEST)["labelled"]
    assert metadata["judged_as_of"] == JUDGED.isoformat()
    assert metadata["labelled"] == expected["labelled"] and metadata["pending"] == 0
    assert metadata["roc_auc"] == pytest.approx(expected["roc_auc"])
    assert metadata["positive_rate"] == pytest.approx(expected["positive_rate"])
    assert metadata["mean_score"] == pytest.approx(expected["mean_score"])
    # More customers buy target brands than the rule learnt before the campaign: at least
    # a warning, a failure (and a retrain) from fail_calibration_error on.
    error = expected["positive_rate"] / expected["mean_score"] - 1
    assert error >= MONITORING.warn_calibration_error
    assert metadata["calibration_error"] == pytest.approx(error)
    failed = error >= MONITORING.fail_calibration_error
    assert metadata["status"] == ("fail" if failed else "warn")
    assert not evaluation.passed
    assert evaluation.severity == (
        dg.AssetCheckSeverity.ERROR if failed else dg.AssetCheckSeverity.WARN
    )
    assert evaluation.description is not None
    assert f"positive rate {expected['positive_rate']:.3f} against mean score" in (
        evaluation.description
    )
    # The alert names the model that scores the partition's date.
    assert metadata["champion"] == shop.champion and metadata["as_of"] == NEWEST.isoformat()
    assert isinstance(shop.sensor["realised"], dg.RunRequest if failed else dg.SkipReason)


def test_a_failed_performance_check_asks_for_one_retrain(shops: dict[str, Shop]) -> None:
    shop = shops["campaign"]
    evaluation, metadata = shop.check("strict")
    assert metadata["status"] == "fail"
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    request = shop.sensor["strict"]
    assert isinstance(request, dg.RunRequest)
    # One retrain per scoring model and date, for the partition the alert came from.
    assert request.run_key == f"{shop.champion}@{NEWEST}"
    assert request.partition_key == NEWEST.isoformat()
    assert request.tags[PERFORMANCE_ALERT_RUN_TAG] == shop.results["strict"].run_id
    assert "positive rate" in request.tags[PERFORMANCE_TAG]


def test_a_stationary_shop_passes_the_performance_check(shops: dict[str, Shop]) -> None:
    shop = shops["stationary"]
    evaluation, metadata = shop.check()
    expected = _expected(shop, JUDGED)
    assert metadata["judged_as_of"] == JUDGED.isoformat()
    assert metadata["calibration_error"] < MONITORING.warn_calibration_error
    assert metadata["auc_drop"] < MONITORING.warn_auc_drop
    assert metadata["roc_auc"] == pytest.approx(expected["roc_auc"])
    assert evaluation.passed, evaluation.description
    skip = shop.sensor["realised"]
    assert isinstance(skip, dg.SkipReason)
    assert "the newest performance check" in str(skip.skip_message)


def test_the_report_holds_drift_distribution_and_realised_performance(
    shops: dict[str, Shop],
) -> None:
    shop = shops["campaign"]
    metadata = shop.metadata("report")
    path = Path(metadata["report"])
    assert path.is_file() and path.name == f"monitoring-{NEWEST}.html"
    page = path.read_text(encoding="utf-8")
    for section in ('id="drift"', 'id="score-distribution"', 'id="realised-performance"'):
        assert section in page, section
    assert page.count("data:image/png;base64,") == 3
    assert "prior_target_brand_share" in page and str(JUDGED) in page
    assert "http" not in page.replace("http://127.0.0.1", "")  # nothing fetched from outside
    assert metadata["performance_status"] == shop.check()[1]["status"]
    for plot in ("drift", "score_distribution", "realised_performance"):
        assert metadata[plot].startswith(f"![{plot}](data:image/png;base64,")
    # The same page in the date's MLflow run.
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=shop.resources["registry"].tracking_uri)
    run = client.get_run(metadata["mlflow_run_id"])
    assert run.data.tags["as_of"] == NEWEST.isoformat()
    # The run's page, opened on MLflow's training (not GenAI) view.
    assert metadata["mlflow_run"].endswith(f"/runs/{run.info.run_id}?workflowType=machine_learning")
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "figures", "tables"} <= artifacts
    assert math.isfinite(run.data.metrics["judged_calibration_error"])


def test_the_report_shows_the_drift_the_check_judged(
    shops: dict[str, Shop], monkeypatch: pytest.MonkeyPatch
) -> None:
    """feature_drift keeps its comparison in the date's monitoring run; the report of the
    same scores shows it rather than comparing the date again, and compares again once
    the date is published anew (a rescoring after a promotion)."""
    import orchestration.defs.monitoring.report as report
    from orchestration.defs.monitoring.assets import feature_drift

    shop = shops["campaign"]
    compared: list[dt.date] = []
    compare_again = report.date_drift

    def counted(*args: Any) -> Any:
        compared.append(args[-1])
        return compare_again(*args)

    monkeypatch.setattr(report, "date_drift", counted)
    _materialise(shop, "drift", feature_drift, NEWEST)
    drift = shop.metadata("drift")
    _materialise(shop, "report_of_drift", monitoring_report, NEWEST)
    shown = shop.metadata("report_of_drift")
    assert compared == []
    assert shown["mlflow_run_id"] == drift["monitoring_run_id"]
    assert shown["drift_status"] == drift["status"]
    page = Path(shown["report"]).read_text(encoding="utf-8")
    assert f"from features and scores of {drift['sample']}" in page
    with duckdb.connect(str(shop.warehouse)) as con:
        republish = f"update {SCORES_TABLE} set scored_at = scored_at + ? where as_of = ?"
        con.execute(republish, [dt.timedelta(hours=1), NEWEST])
    try:
        _materialise(shop, "report_republished", monitoring_report, NEWEST)
    finally:
        with duckdb.connect(str(shop.warehouse)) as con:
            con.execute(republish, [dt.timedelta(hours=-1), NEWEST])
    assert compared == [NEWEST]
