"""`nextbuy doctor` on a real home: a small simulated shop, one feature build, a rule
registered and promoted as the champion (training is not what doctor checks).

Healthy first; then one thing broken at a time, each put right again by its test, except
the new day partition, which stays (its test comes last).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner, Result

from orchestration.cli import main
from orchestration.settings import load_parameters
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


@pytest.fixture(scope="module")
def built_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("doctor") / "home"
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXTBUY_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        simulated = runner.invoke(main, ["simulate", "--users", "300", "--end", "2024-03-31"])
        assert simulated.exit_code == 0, simulated.output
        built = runner.invoke(main, ["features", "--as-of", "2024-04-01"])
        assert built.exit_code == 0, built.output
        _promote_rule_champion()
    return home


@pytest.fixture
def home(built_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEXTBUY_HOME", str(built_home))
    return built_home


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
