"""What a failed run says on the terminal: the step's own exception (not Dagster's
wrapper), warnings as warnings; and bad settings refused before any run starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from orchestration.run_report import failure_summary, warning_lines
from orchestration.settings import DEFAULT_PARAMETERS, ParametersError, load_parameters


@dg.asset
def candidate_model() -> None:
    try:
        {}["depth"]
    except KeyError as e:
        raise ValueError("catboost: depth 99 is above 16") from e


@dg.asset
def clean_table() -> None:
    return None


@dg.asset_check(asset=clean_table)
def orphan_rows() -> dg.AssetCheckResult:
    # As dagster-dbt reports a dbt test of severity warn: no description, a row count.
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"dagster_dbt/failed_row_count": 3},
    )


@dg.asset_check(asset=clean_table)
def unique_ids() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR)


def test_a_failed_run_names_the_step_its_exception_and_the_warnings() -> None:
    defs = dg.Definitions(
        assets=[candidate_model, clean_table], asset_checks=[orphan_rows, unique_ids]
    )
    result = dg.materialize(
        [candidate_model, clean_table, orphan_rows, unique_ids], raise_on_error=False
    )
    assert not result.success
    summary = failure_summary(result, defs)
    assert "Error occurred while executing" not in summary and "None" not in summary
    lines = summary.splitlines()
    # The innermost exception first, with where it was raised, then the one the step raised.
    assert "step candidate_model failed: KeyError: 'depth'" in lines
    assert any(
        line.startswith("  raised at tests/orchestration/test_failure_messages.py:")
        and line.endswith("in candidate_model")
        for line in lines
    ), summary
    assert "  (raised by the step as ValueError: catboost: depth 99 is above 16)" in lines
    assert "warning: orphan_rows on clean_table: 3 rows found by the dbt test" in lines
    assert "check unique_ids on clean_table failed: did not pass" in lines
    assert lines[-1] == "not materialised, so left as they were: candidate_model"
    assert warning_lines(result) == [
        "warning: orphan_rows on clean_table: 3 rows found by the dbt test"
    ]


def _with(path: Path, setting: str, value: object) -> Path:
    raw = yaml.safe_load(DEFAULT_PARAMETERS.read_text())
    section, key = setting.split(".")
    raw[section][key] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


BAD_SETTINGS = [
    ("scoring.audience_top_percent", 0),
    ("scoring.audience_top_percent", -1),
    ("scoring.audience_top_percent", 100.5),
    ("scoring.audience_top_percent", float("nan")),
    ("split.folds", 0),
    ("split.test_days", 0),
    ("monitoring.label_horizon_days", -3),
    ("campaign.target_brands", []),
    ("gate.margin", float("inf")),
    ("challenger.C", float("inf")),
    ("online.learning_rate", 0),
    ("model.categorical_features", None),  # with no numeric or text features either: below
]


@pytest.mark.parametrize(("setting", "value"), BAD_SETTINGS)
def test_a_bad_setting_is_refused_with_the_file_and_key(
    setting: str, value: object, tmp_path: Path
) -> None:
    path = _with(tmp_path / "parameters.yaml", setting, value)
    if setting.startswith("model."):
        raw = yaml.safe_load(path.read_text())
        raw["model"].update(categorical_features=[], numeric_features=[], text_features=[])
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        setting = "model"
    with pytest.raises(ParametersError) as refused:
        load_parameters(path)
    assert str(refused.value).startswith(f"{path}: ")
    assert f"{setting}:" in str(refused.value)


def _edited(path: Path, edit: Callable[[dict[str, Any]], object]) -> Path:
    raw = yaml.safe_load(DEFAULT_PARAMETERS.read_text())
    edit(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# Whole-file defects of the campaign: each names the file and what is wrong where.
MALFORMED: dict[str, tuple[Callable[[Path], Path], str]] = {
    "a missing section": (
        lambda p: _edited(p, lambda raw: raw.pop("registry")),
        "registry: missing",
    ),
    "a word where a number goes": (
        lambda p: _edited(p, lambda raw: raw["gate"].update(margin="abc")),
        "gate.margin: Input should be a valid number",
    ),
    "a misspelt key": (
        lambda p: _edited(p, lambda raw: raw["split"].update(test_dayz=3)),
        "split.test_dayz: unknown setting",
    ),
    "one brand, not a list": (
        lambda p: _edited(p, lambda raw: raw["campaign"].update(target_brands="Hanes")),
        "campaign.target_brands: Input should be a valid tuple",
    ),
    "invalid YAML": (
        lambda p: _text(p, "campaign: [unclosed\n"),
        "not valid YAML",
    ),
    "a list at the top": (
        lambda p: _text(p, "- campaign\n"),
        "expected a mapping of sections at the top level",
    ),
    "an empty file": (
        lambda p: _text(p, ""),
        "expected a mapping of sections at the top level",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_parameters_file_is_refused_naming_file_and_key(
    case: str, tmp_path: Path
) -> None:
    write, named = MALFORMED[case]
    path = write(tmp_path / "parameters.yaml")
    with pytest.raises(ParametersError) as refused:
        load_parameters(path)
    assert str(refused.value).startswith(f"{path}: "), refused.value
    assert named in str(refused.value)


@pytest.mark.parametrize("command", ["pipeline", "retrain", "features", "tick", "dbt"])
def test_commands_refuse_a_bad_setting_before_any_run(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orchestration.dbt
    import orchestration.pipeline
    import orchestration.tick
    from orchestration.cli import main
    from orchestration.environment import current_environment

    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("a run started despite the bad setting")

    for module, name in [
        (orchestration.pipeline, "run_job"),
        (orchestration.pipeline, "run_pipeline"),
        (orchestration.pipeline, "run_retrain"),
        (orchestration.tick, "tick"),
        (orchestration.dbt, "run_dbt"),
    ]:
        monkeypatch.setattr(module, name, no_run)
    warehouse = current_environment().warehouse_path
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    warehouse.touch()
    if command == "dbt":
        # The file is good; the override is what is refused.
        args = ["dbt", "build", "--vars", "{audience_top_percent: 0}"]
    else:
        monkeypatch.setenv(
            "NEXTBUY_PARAMETERS",
            str(_with(tmp_path / "bad.yaml", "scoring.audience_top_percent", 0)),
        )
        args = [command]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert "scoring.audience_top_percent: Input should be greater than 0" in result.output
    assert ("--vars" if command == "dbt" else "bad.yaml") in result.output
    assert isinstance(result.exception, SystemExit), result.exception


class Warehouse(dg.ConfigurableResource):
    path: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        raise FileNotFoundError(f"no warehouse at {self.path}")


@dg.asset
def scores(warehouse: Warehouse) -> None:
    return None


def test_a_resource_that_cannot_start_is_named_with_its_cause() -> None:
    resources = {"warehouse": Warehouse(path="/nowhere/warehouse.duckdb")}
    result = dg.materialize([scores], resources=resources, raise_on_error=False)
    summary = failure_summary(result, dg.Definitions(assets=[scores], resources=resources))
    assert summary.splitlines()[0] == (
        "starting the run's resources failed: "
        "FileNotFoundError: no warehouse at /nowhere/warehouse.duckdb"
    )


def test_a_failed_dbt_command_shows_dbts_errors_not_its_command() -> None:
    """dagster-dbt's message starts with the whole dbt command line and ends with the
    errors dbt logged; the terminal shows the errors (the cause) within its lines."""
    from dagster._utils.error import SerializableErrorInfo

    from orchestration.run_report import MESSAGE_LINES, cause_lines

    command = "/venv/bin/dbt build --vars {" + '"x": 1, ' * 40 + "} --select a b c"
    message = (
        f"DagsterDbtCliRuntimeError: The dbt CLI process with command\n\n`{command}`\n\n"
        "failed with exit code `1`. Check the stdout in the Dagster compute logs for the "
        "full information about the error, or view the dbt debug log: /home/dbt/dbt.log.\n\n"
        "Errors parsed from dbt logs:\n\n"
        "4 of 15 ERROR creating sql table model marts.score_outcomes [\x1b[31mERROR\x1b[0m]\n\n"
        "Runtime Error in model score_outcomes (models/scoring/score_outcomes.sql)\n"
        "  Catalog Error: Table with name stg_x does not exist!\n\n"
        "4 of 15 ERROR creating sql table model marts.score_outcomes [\x1b[31mERROR\x1b[0m]"
    )
    error = SerializableErrorInfo(message, [], "DagsterDbtCliRuntimeError")
    lines = "\n".join(cause_lines("step scoring_models", error)).splitlines()
    assert lines == [
        "step scoring_models failed: DagsterDbtCliRuntimeError: dbt failed (exit code 1):",
        "  4 of 15 ERROR creating sql table model marts.score_outcomes [ERROR]",
        "  Runtime Error in model score_outcomes (models/scoring/score_outcomes.sql)",
        "    Catalog Error: Table with name stg_x does not exist!",
        "  dbt's log: /home/dbt/dbt.log",
    ]
    assert len(lines) <= MESSAGE_LINES + 1
