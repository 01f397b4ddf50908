"""The `nextbuy` command line, run in process against warehouses in temporary folders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestration.cli import main
from tests.conftest import FIXTURES
from tests.orchestration.conftest import SmallShop


def test_load_then_show_the_warehouse(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["load-thelook", str(FIXTURES / "thelook_google")])
    assert result.exit_code == 0, result.output
    assert "raw.order_items: 339 rows" in result.output
    shown = runner.invoke(main, ["warehouse"])
    assert shown.exit_code == 0, shown.output
    assert "raw.users" in shown.output and "200" in shown.output
    assert str(tmp_path / "home" / "warehouse.duckdb") in shown.output


def test_failed_load_exits_non_zero_and_says_raw_is_unchanged(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "users.csv").write_text("")
    result = CliRunner().invoke(main, ["load-thelook", str(bad)])
    assert result.exit_code == 1
    assert (
        "load failed, raw unchanged" in result.output and "users.csv: empty file" in result.output
    )


def test_warehouse_command_without_a_warehouse_says_what_to_do() -> None:
    result = CliRunner().invoke(main, ["warehouse"])
    assert result.exit_code == 1
    assert "nextbuy simulate" in result.output


def test_simulate_then_append_days() -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["simulate", "--users", "300", "--end", "2024-03-31"])
    assert first.exit_code == 0, first.output
    assert "ending 2024-03-31" in first.output
    appended = runner.invoke(main, ["simulate", "--append-days", "2"])
    assert appended.exit_code == 0, appended.output
    assert "ending 2024-04-02" in appended.output
    mixed = runner.invoke(main, ["simulate", "--append-days", "1", "--seed", "3"])
    assert mixed.exit_code == 2 and "give no other settings" in mixed.output


def test_append_days_without_a_simulation_is_refused() -> None:
    result = CliRunner().invoke(main, ["simulate", "--append-days", "1"])
    assert result.exit_code == 1 and "holds no simulation" in result.output


def test_features_builds_and_counts_the_marts(
    small_shop: SmallShop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The session's small shop (tests/orchestration/conftest.py) is a `nextbuy simulate`
    # and a `nextbuy features`; its output and runs are read here, its home copied.
    output = small_shop.output
    # dagster-dbt's metadata fetchers chdir into the dbt project from several threads;
    # a relative NEXTBUY_HOME (make run's) must still mean the same folder afterwards.
    assert small_shop.cwd_after == small_shop.cwd_before
    assert "marts.training_examples" in output and "label rate" in output
    # Progress while the run's own output goes to the log: each step's start and end.
    assert re.search(r"^features run [0-9a-f-]{36}:$", output, re.M), output
    assert re.search(r"^  \d\d:\d\d:\d\d feature_models \.\.\.$", output, re.M)
    assert re.search(r"^  \d\d:\d\d:\d\d feature_models done \(\d+ s\)$", output, re.M)
    model = r"^    dbt: \d+ of \d+ OK created sql \w+ model marts.customer_features \[OK in "
    assert re.search(model, output, re.M), output
    # Read only (the job's snapshot depends on the home): the shop's own home.
    monkeypatch.setenv("NEXTBUY_HOME", str(small_shop.home))
    _runs_are_filed_under_the_ui_code_location()
    monkeypatch.setenv("NEXTBUY_HOME", str(small_shop.copy(tmp_path)))
    again = CliRunner().invoke(main, ["dbt", "run", "--select", "customer_features"])
    assert again.exit_code == 0


@pytest.mark.parametrize("command", ["pipeline", "retrain"])
def test_pipeline_without_a_warehouse_says_what_to_do(command: str) -> None:
    result = CliRunner().invoke(main, [command])
    assert result.exit_code == 1
    assert "no warehouse at" in result.output and "nextbuy simulate" in result.output


def _runs_are_filed_under_the_ui_code_location() -> None:
    """The UI lists a job's runs by the code location's label: CLI runs carry it too."""
    import yaml

    from orchestration.environment import PROJECT_ROOT, current_environment
    from orchestration.instance import instance

    workspace = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())
    location = workspace["load_from"][0]["python_module"]["location_name"]
    with instance(current_environment()) as inst:
        runs = inst.get_runs()
    assert runs and {r.job_name for r in runs} == {"features"}
    assert {r.tags.get(".dagster/repository") for r in runs} == {f"__repository__@{location}"}
    # A run of the job the code location defines, not of a rebound copy: the UI then
    # re-executes it as the same version.
    from orchestration.definitions import build_definitions

    job = build_definitions().resolve_job_def("features")
    assert {r.job_snapshot_id for r in runs} == {job.get_job_snapshot_id()}
