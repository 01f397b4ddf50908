"""Drift monitoring (orchestration/defs/monitoring/): the simulator's campaign shift seen
against a stationary thelook-mode shop, and the feature_drift asset, its `drift` check and
the retrain_on_drift sensor on hand-made frames, with a real DuckDB file, a real MLflow
store and a real Dagster instance.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
import pytest

from ml.baselines import PriorShareRule
from ml.drift import DriftReport
from orchestration.dbt import run_dbt
from orchestration.defs.monitoring.assets import feature_drift
from orchestration.defs.monitoring.reference import (
    MonitoringSample,
    compare,
    drift_reference,
    record_drift_reference,
    scored_population,
)
from orchestration.defs.monitoring.sensors import retrain_on_drift
from orchestration.resources import ParametersResource, RegistryResource, WarehouseResource
from orchestration.settings import load_parameters, parameters_path
from orchestration.tracking import scores
from tests.ml.synthetic import make_examples

# The MLflow store of test_registry (autouse, module-scoped): MLflow's configured store
# while this module runs, put back afterwards.
from tests.orchestration.test_registry import _log, store  # noqa: F401
from thelook.simulator import simulate
from thelook.warehouse import connect

PARAMS = load_parameters()
WARN = PARAMS.monitoring.warn_psi

# ---------------------------------------------------------------- the campaign shift

# The champion's reference is the customers as of the campaign's first day; the scored
# date is three months into it. The shop is small but old enough that its customers' ages
# (days since signup, first order) barely move in three months.
SHOP = {"users": 20_000, "start": dt.date(2023, 1, 1), "end": dt.date(2026, 9, 30), "seed": 3}
TRAINED, SCORED = dt.date(2026, 7, 1), dt.date(2026, 10, 1)
# parameters.yaml's uplift (2) leaves every campaign column of these customers under PSI
# 0.01 (and the brand tokens of the campaign's purchases alone at 0.04): it changes what
# customers buy next, which features of their past cannot show until they have bought.
# A strong campaign reaches enough histories within three months to warn.
UPLIFT = 50.0
CAMPAIGN_COLUMNS = ["prior_target_brand_share", "score", "brand_sequence"]


def _customers(warehouse: Path, as_of: dt.date, select: str) -> pd.DataFrame:
    run_dbt(["run", "--select", select], warehouse=warehouse, vars={"as_of": as_of.isoformat()})
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("select * from marts.customer_features").df()


def _shop(folder: Path, mode: str, **overrides: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A simulated shop's customers on the day its champion was trained and on the scored
    day."""
    warehouse = folder / f"{mode}.duckdb"
    settings = PARAMS.simulation.with_overrides(**SHOP, mode=mode, **overrides)
    con = connect(warehouse)
    simulate(con, settings, PARAMS.campaign.target_brands)
    con.close()
    return (
        _customers(warehouse, TRAINED, "+customer_features"),
        _customers(warehouse, SCORED, "customer_features"),
    )


def _shift(
    trained: pd.DataFrame, scored: pd.DataFrame, sample_size: int | None = None
) -> DriftReport:
    """The drift of the scored customers from the trained-on customers, with the loyalty
    rule (a champion the gate can fall back to) as the model; of the customers of a
    monitoring sample of ``sample_size`` when given, as the assets draw it."""
    if sample_size is not None:
        trained, scored = (
            frame[frame["customer_id"] % MonitoringSample.of(len(frame), sample_size).stride == 0]
            for frame in (trained, scored)
        )
    rule = PriorShareRule().fit(trained, [])
    reference = drift_reference(trained, scores(rule, trained), PARAMS.model, PARAMS.monitoring)
    return compare(reference, scored.assign(score=scores(rule, scored)), PARAMS.monitoring)


@pytest.fixture(scope="module")
def shifts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("shops")
    shops = {
        "campaign": _shop(folder, "behavioural", campaign_uplift=UPLIFT),
        "stationary": _shop(folder, "thelook"),
    }
    reports = {name: _shift(*shop) for name, shop in shops.items()}
    # The same shops, monitored on a sample of about a quarter of their customers.
    reports |= {f"{name}_sample": _shift(*shop, 4_000) for name, shop in shops.items()}
    return {name: report.columns.set_index("column") for name, report in reports.items()}


def test_the_campaign_shift_moves_the_target_brand_columns(
    shifts: dict[str, pd.DataFrame],
) -> None:
    campaign, stationary = shifts["campaign"], shifts["stationary"]
    # The customers who bought during the campaign carry more target brands: their prior
    # share (and so the loyalty rule's score) warns, their brand tokens move.
    assert (campaign.loc[["prior_target_brand_share", "score"], "psi"] >= WARN).all()
    assert campaign.loc["score", "status"] == "warn"
    # Target brands gain in the token shares (top_changes leads with the biggest moves).
    assert any(
        brand in campaign.loc["brand_sequence", "top_changes"]
        for brand in ("Allegra K", "Calvin Klein")
    )
    for column in CAMPAIGN_COLUMNS:
        assert campaign.loc[column, "psi"] > 10 * stationary.loc[column, "psi"], column


def test_stationary_data_does_not_drift(shifts: dict[str, pd.DataFrame]) -> None:
    stationary = shifts["stationary"]
    # Three months of new customers bring cities the reference never saw; they join the
    # pooled tail, so a growing shop is no drift.
    assert (stationary["status"] == "ok").all(), stationary[["psi", "status", "top_changes"]]
    assert stationary["psi"].max() < WARN


def test_a_monitoring_sample_gives_the_same_verdicts(shifts: dict[str, pd.DataFrame]) -> None:
    """About 4,000 of the shops' customers (every 4th or 5th id) tell what all of them
    tell: the same status for every column, PSI within its sampling noise."""
    for shop in ("campaign", "stationary"):
        whole, sample = shifts[shop], shifts[f"{shop}_sample"]
        assert list(sample.index) == list(whole.index)
        assert (sample["status"] == whole["status"]).all(), shop
        assert (sample["psi"] - whole["psi"]).abs().max() < 0.05, shop


def test_the_monitoring_sample_is_every_kth_customer(tmp_path: Path) -> None:
    assert MonitoringSample.of(400, 200_000).where() == "true"
    assert MonitoringSample.of(400, 200_000).describe() == "every customer (400)"
    assert MonitoringSample.of(5_500_000, 200_000).stride == 28
    warehouse = tmp_path / "warehouse.duckdb"
    customers = make_examples(3_000, seed=5).drop_duplicates("customer_id")
    _write_scored(warehouse, customers, "1", AS_OF)
    population = scored_population(WarehouseResource(path=str(warehouse)), AS_OF, 1_000)
    ids = population.frame["customer_id"]
    assert population.sample.stride == -(-len(customers) // 1_000)
    assert (ids % population.sample.stride == 0).all()
    assert set(ids) == set(customers["customer_id"][customers["customer_id"] % 3 == 0])
    assert population.frame["score"].notna().all()
    assert population.sample.describe(len(ids)).startswith(f"{len(ids):,} of {len(customers):,}")


# ------------------------------------------- the asset, its check and the retrain sensor

AS_OF = dt.date(2026, 3, 2)


def _write_scored(warehouse: Path, customers: pd.DataFrame, version: str, as_of: dt.date) -> None:
    """customer_features as of ``as_of`` and the loyalty rule's scores of them."""
    features = customers.drop(columns=["order_id", "label"]).assign(as_of=pd.Timestamp(as_of))
    scored = pd.DataFrame(  # noqa: F841 (read by DuckDB by name)
        {
            "customer_id": features["customer_id"],
            "score": scores(PriorShareRule().fit(features, []), features),
            "model_name": PARAMS.registry.model_name,
            "model_version": version,
            "as_of": as_of,
            # As the scoring step publishes them: each write is a new publication.
            "scored_at": pd.Timestamp.now(),
        }
    )
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema if not exists marts")
        con.execute("create schema if not exists ml")
        con.execute("create or replace table marts.customer_features as select * from features")
        con.execute("create or replace table ml.customer_scores as select * from scored")


def _regender(customers: pd.DataFrame, count: int) -> pd.DataFrame:
    """``count`` customers who were not "F" become "F"."""
    changed = customers.copy()
    changed.loc[changed.index[changed["gender"].ne("F")][:count], "gender"] = "F"
    return changed


@dataclass
class Step:
    result: dg.ExecuteInProcessResult
    sensor: dg.RunRequest | dg.SkipReason
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def evaluation(self) -> dg.AssetCheckEvaluation | None:
        evaluations = self.result.get_asset_check_evaluations()
        return evaluations[0] if evaluations else None


@pytest.fixture(scope="module")
def steps(store: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Step]:  # noqa: F811
    """One champion (v1, with a reference from 400 customers) and one without (v2), then
    feature_drift materialised in one instance on: the same customers, 80 and then 140 of
    them moved to "F" (warn, then fail, twice), a fail of the next day, and v2's scores;
    the sensor evaluated after each."""
    from orchestration.registry import Registry
    from orchestration.tracking import Tracker

    warehouse = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    customers = make_examples(400, seed=3)
    resources = {
        "warehouse": WarehouseResource(path=str(warehouse)),
        "parameters": ParametersResource(path=str(parameters_path())),
        "registry": RegistryResource(tracking_uri=store),
    }
    tracker = Tracker(store, experiment=PARAMS.registry.experiment)
    registry = Registry(
        store, model_name=PARAMS.registry.model_name, alias=PARAMS.registry.champion_alias
    )
    _write_scored(warehouse, customers, "1", AS_OF)
    versions = []
    for name in ("with-reference", "without"):
        rule = PriorShareRule().fit(customers, [])
        run_id = _log(tracker, rule, customers, run_name=name)
        if name == "with-reference":
            record_drift_reference(resources["warehouse"], tracker.client, run_id, rule, PARAMS)
        versions.append(registry.register(run_id).version)
    registry.promote(registry.version(versions[0]), "test")

    instance = dg.DagsterInstance.ephemeral()
    plan = {
        "same": (customers, versions[0], AS_OF),
        "warn": (_regender(customers, 80), versions[0], AS_OF),
        "fail": (_regender(customers, 140), versions[0], AS_OF),
        "fail_again": (_regender(customers, 140), versions[0], AS_OF),
        "fail_next_day": (_regender(customers, 140), versions[0], AS_OF + dt.timedelta(1)),
        "no_reference": (customers, versions[1], AS_OF + dt.timedelta(2)),
    }
    steps = {}
    for name, (frame, version, as_of) in plan.items():
        _write_scored(warehouse, frame, version, as_of)
        key = as_of.isoformat()
        if key not in instance.get_dynamic_partitions("as_of_dates"):
            instance.add_dynamic_partitions("as_of_dates", [key])
        result = dg.materialize(
            [feature_drift], resources=resources, instance=instance, partition_key=key
        )
        (materialization,) = result.asset_materializations_for_node("monitoring__feature_drift")
        sensor = retrain_on_drift(dg.build_sensor_context(instance=instance))
        metadata = {k: v.value for k, v in materialization.metadata.items()}
        steps[name] = Step(result=result, sensor=sensor, metadata=metadata)
    return steps


def test_no_drift_passes_with_a_table_of_every_column(steps: dict[str, Step]) -> None:
    step = steps["same"]
    assert step.evaluation is not None and step.evaluation.passed
    assert step.metadata["status"] == "ok"
    assert step.metadata["as_of"] == AS_OF.isoformat()
    assert step.metadata["champion"].endswith("v1 (prior_share_rule)")
    assert step.metadata["customers"] == 400
    assert step.metadata["max_psi"] == pytest.approx(0.0)
    table = step.metadata["columns"]
    columns = [record.data["column"] for record in table.records]
    expected = {*PARAMS.model.categorical_features, *PARAMS.model.numeric_features}
    assert set(columns) == expected | set(PARAMS.model.text_features) | {"score"}
    assert {c.name for c in table.schema.columns} >= {"column", "psi", "status", "p_value"}
    assert isinstance(step.sensor, dg.SkipReason)


def test_warn_and_fail_severities_name_the_drifted_column(steps: dict[str, Step]) -> None:
    warn, fail = steps["warn"].evaluation, steps["fail"].evaluation
    assert warn is not None and fail is not None
    assert not warn.passed and warn.severity == dg.AssetCheckSeverity.WARN
    assert not fail.passed and fail.severity == dg.AssetCheckSeverity.ERROR
    assert warn.description is not None and "gender 0.173 (warn)" in warn.description
    assert fail.description is not None and "gender 0.517 (fail)" in fail.description
    assert steps["fail"].metadata["worst_columns"].startswith("gender 0.517")
    (top,) = [r.data for r in steps["fail"].metadata["columns"].records][:1]
    assert top["column"] == "gender" and top["status"] == "fail" and top["p_value"] < 1e-6


def test_the_sensor_retrains_once_per_failed_date_and_model(steps: dict[str, Step]) -> None:
    assert isinstance(steps["warn"].sensor, dg.SkipReason)
    first, again, next_day = (steps[s].sensor for s in ("fail", "fail_again", "fail_next_day"))
    assert isinstance(first, dg.RunRequest) and isinstance(again, dg.RunRequest)
    assert isinstance(next_day, dg.RunRequest)
    # The same alert re-checked (the retrain job re-scores and re-checks its date) keeps
    # its run key, so Dagster launches one retrain for it; the next day's alert is new.
    assert first.run_key == again.run_key != next_day.run_key
    assert first.run_key is not None and first.run_key.endswith(f"v1 (prior_share_rule)@{AS_OF}")
    assert first.tags["nextbuy/drift_alert_run"] == steps["fail"].result.run_id
    assert "gender" in first.tags["nextbuy/drifted"]


def test_a_champion_without_reference_is_reported_not_failed(steps: dict[str, Step]) -> None:
    step = steps["no_reference"]
    assert step.result.success
    assert step.metadata["status"] == "no reference"
    assert "drift_reference.json" in step.metadata["reason"]
    evaluation = step.evaluation
    assert evaluation is not None and not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert isinstance(step.sensor, dg.SkipReason)
