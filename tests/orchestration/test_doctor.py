"""`nextbuy doctor` and the settings fingerprint (orchestration/doctor.py,
orchestration/fingerprint.py) on one real home: a copy of the session's small simulated
shop after its one feature build (tests/orchestration/conftest.py), a rule registered and
promoted as the champion (training is not what doctor checks).

Healthy first; then one thing broken at a time, each put right again by its test, except
the new day partition, which stays (its test comes after doctor's). Last, a second
`nextbuy features` with other target brands must rebuild every label (an incremental
build would keep the old ones, since no raw partition changed them) and say which setting
changed. One home for both saves a simulation and a feature build (about a minute).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner, Result

from orchestration.cli import main
from orchestration.fingerprint import current_fingerprint, rebuild_notice, stored_fingerprint
from orchestration.resources import WarehouseResource
from orchestration.settings import load_parameters
from tests.orchestration.conftest import SmallShop
from thelook.warehouse import connect


def _promote_rule_champion() -> None:
    """Log the overall-rate rule as a model run, register it and make it the champion."""
    from ml.baselines import OverallRate
    from orchestration.environment import current_environment
    from orchestration.mlflow_store import configure_mlflow
    from orchestration.resources import RegistryResource

    store = RegistryResource.for_environment(current_environment())
    configure_mlflow(store.tracking_uri)
    settings = load_parameters().registry
    frame = pd.DataFrame({"customer_id": [1, 2, 3, 4]})
    run_id = store.tracker(settings).log_run(
        run_name="rule",
        scorer=OverallRate().fit(frame, [1, 0, 0, 1]),
        kind="baseline",
        params={},
        data_window={},
        metrics={},
        figures={},
        tables={},
        input_example=frame,
        tags={},
    )
    registry = store.open(settings)
    registry.promote(registry.register(run_id), "test")


@dataclass
class Built:
    home: Path
    output: str


@pytest.fixture(scope="module")
def built(small_shop: SmallShop, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A copy of the session's small shop (tests/orchestration/conftest.py: simulated,
    one order item dated 2999 loaded, features built), with a rule as its champion."""
    home = small_shop.copy(tmp_path_factory.mktemp("doctor"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXTBUY_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        _promote_rule_champion()
    return Built(home, small_shop.output)


@pytest.fixture
def home(built: Built, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEXTBUY_HOME", str(built.home))
    return built.home


def _doctor() -> tuple[Result, dict[str, dict[str, object]]]:
    result = CliRunner().invoke(main, ["doctor", "--json"])
    checks = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    return result, {c["name"]: c for c in checks}


def _problem(name: str) -> tuple[Result, dict[str, object]]:
    """Doctor's result when exactly check ``name`` fails."""
    result, checks = _doctor()
    assert result.exit_code == 1, result.output
    assert [n for n, c in checks.items() if not c["ok"]] == [name], result.output
    return result, checks[name]


def test_a_healthy_home_is_all_ok_and_doctor_changes_nothing(home: Path) -> None:
    warehouse = home / "warehouse.duckdb"
    before = hashlib.sha256(warehouse.read_bytes()).hexdigest()
    result, checks = _doctor()
    assert result.exit_code == 0, result.output
    assert set(checks) == {
        "warehouse",
        "leftover tables",
        "marts vs raw",
        "settings fingerprint",
        "dagster runs",
        "mlflow runs",
        "champion",
    }
    assert all(c["ok"] for c in checks.values()), result.output
    assert "its model loads" in str(checks["champion"]["message"])
    assert hashlib.sha256(warehouse.read_bytes()).hexdigest() == before


def test_a_changed_setting_asks_for_a_full_refresh(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = load_parameters().model_dump(mode="json")
    params["campaign"]["target_brands"] = ["NoSuchBrandXYZ"]
    (tmp_path / "copy.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("NEXTBUY_PARAMETERS", str(tmp_path / "copy.yaml"))
    result, check = _problem("settings fingerprint")
    assert "target_brands changed (" in str(check["message"])
    assert "→ [NoSuchBrandXYZ])" in str(check["message"])
    assert check["repair"] == "nextbuy features --full-refresh"
    assert "repair: nextbuy features --full-refresh" in result.output


def test_a_leftover_tmp_table_is_named_with_the_statement_that_drops_it(home: Path) -> None:
    warehouse = home / "warehouse.duckdb"
    con = connect(warehouse)
    con.execute("create table marts.training_examples__dbt_tmp as select 1 as x")
    con.close()
    _, check = _problem("leftover tables")
    assert "marts.training_examples__dbt_tmp" in str(check["message"])
    repair = str(check["repair"])
    assert 'drop table if exists "marts"."training_examples__dbt_tmp"' in repair
    assert str(warehouse) in repair
    con = connect(warehouse)
    con.execute("drop table marts.training_examples__dbt_tmp")
    con.close()


def test_a_dangling_mlflow_run_is_reported_for_the_next_run_to_close(home: Path) -> None:
    from mlflow import MlflowClient

    from orchestration.mlflow_store import local_tracking_uri

    client = MlflowClient(local_tracking_uri(home))
    experiment = client.get_experiment_by_name(load_parameters().registry.experiment)
    run = client.create_run(experiment.experiment_id, run_name="interrupted")
    try:
        _, check = _problem("mlflow runs")
        assert run.info.run_id in str(check["message"])
        assert "still marked running" in str(check["message"])
        assert check["repair"] == "none needed: the next nextbuy run closes them"
    finally:
        client.set_terminated(run.info.run_id, "KILLED")


def test_a_champion_alias_on_a_missing_version(home: Path) -> None:
    settings = load_parameters().registry
    database = home / "mlflow" / "mlflow.db"
    # MLflow refuses an alias to a version that does not exist; a store can still hold one
    # (a version deleted behind the registry's back, a restored backup).
    with sqlite3.connect(database) as db:
        db.execute("update registered_model_aliases set version = 99")
    try:
        _, check = _problem("champion")
        assert f"{settings.model_name}@{settings.champion_alias}" in str(check["message"])
        assert "has no version 99" in str(check["message"])
        assert "delete_registered_model_alias" in str(check["repair"])
        assert str(check["repair"]).endswith("&& nextbuy retrain")
    finally:
        with sqlite3.connect(database) as db:
            db.execute("update registered_model_aliases set version = 1")


def test_a_new_day_partition_asks_for_a_feature_build(home: Path) -> None:
    """Last: the appended day stays."""
    from thelook import simulator

    con = connect(home / "warehouse.duckdb")
    simulator.append_days(con, 1)
    con.close()
    _, check = _problem("marts vs raw")
    # The simulator's new day, and the day before it when that was still incomplete.
    message = str(check["message"])
    assert "of raw.order_items new or changed since the last feature build" in message
    assert check["repair"] == "nextbuy features"


# Three of the default brands and one no shop sells: labels change, and the label-rate
# band of the expectation suites still holds on this small shop.
NEW_BRANDS = ["NoSuchBrandXYZ", "Allegra K", "Calvin Klein", "Carhartt"]


@dataclass
class Runs:
    home: Path
    changed_parameters: Path
    first: str
    second: Result
    labels_before: pd.DataFrame
    labels_after: pd.DataFrame


def _labels(warehouse: Path) -> pd.DataFrame:
    con = connect(warehouse, read_only=True)
    try:
        return con.execute(
            "select customer_id, order_id, label from marts.training_examples order by all"
        ).df()
    finally:
        con.close()


@pytest.fixture(scope="module")
def runs(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """After doctor's tests: the same home built again with other target brands."""
    changed = tmp_path_factory.mktemp("fingerprint") / "changed.yaml"
    params = load_parameters().model_dump(mode="json")
    params["campaign"]["target_brands"] = NEW_BRANDS
    changed.write_text(yaml.safe_dump(params))
    warehouse = built.home / "warehouse.duckdb"
    before = _labels(warehouse)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXTBUY_HOME", str(built.home))
        mp.setenv("NEXTBUY_PARAMETERS", str(changed))
        # As the first build: the as-of date from the data.
        second = CliRunner().invoke(main, ["features"])
        assert second.exit_code == 0, second.output
    return Runs(built.home, changed, built.output, second, before, _labels(warehouse))


def test_a_first_build_records_the_fingerprint_without_a_notice(runs: Runs) -> None:
    assert "full refresh" not in runs.first
    # The second run recorded its own, with the changed brands.
    stored = stored_fingerprint(WarehouseResource(path=str(runs.home / "warehouse.duckdb")))
    assert stored is not None and stored.settings["target_brands"] == NEW_BRANDS


def test_changed_target_brands_rebuild_every_label_and_say_so(runs: Runs) -> None:
    default = ", ".join(load_parameters().campaign.target_brands)
    notice = (
        f"target_brands changed ([{default}] → [{', '.join(NEW_BRANDS)}]): "
        "rebuilding the incremental marts from all partitions (full refresh)"
    )
    assert notice in runs.second.output
    # The labels a full build computes: any non-cancelled item of order k of a new brand
    # (from the staging views, which read raw as it is now).
    placeholders = ", ".join("?" for _ in NEW_BRANDS)
    con = connect(runs.home / "warehouse.duckdb", read_only=True)
    try:
        expected = con.execute(
            f"""select examples.customer_id, examples.order_id,
                      coalesce(max(not items.is_cancelled and products.brand in ({placeholders})), false)::int
                          as label
               from marts.training_examples as examples
               left join staging.stg_thelook__order_items as items using (order_id)
               left join staging.stg_thelook__products as products using (product_id)
               group by all order by all""",
            NEW_BRANDS,
        ).df()
    finally:
        con.close()
    after = runs.labels_after.astype({"label": int})
    pd.testing.assert_frame_equal(after, expected, check_dtype=False)
    assert not runs.labels_before["label"].astype(int).equals(after["label"])
    assert "label rate" in runs.second.output


def test_unchanged_settings_need_no_rebuild(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = runs.home / "warehouse.duckdb"
    monkeypatch.setenv("NEXTBUY_PARAMETERS", str(runs.changed_parameters))
    assert rebuild_notice(warehouse, current_fingerprint(load_parameters())) is None
    # Back to parameters.yaml's brands: a change again, named the other way round.
    monkeypatch.delenv("NEXTBUY_PARAMETERS")
    notice = rebuild_notice(warehouse, current_fingerprint(load_parameters()))
    assert notice is not None and f"target_brands changed ([{', '.join(NEW_BRANDS)}] →" in notice
