from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestration.environment import TELEMETRY_OFF, current_environment, disable_telemetry
from orchestration.settings import (
    DEFAULT_PARAMETERS,
    ParametersError,
    load_parameters,
    parse_parameters,
)


def test_local_is_the_default_and_state_lives_under_home(tmp_path: Path) -> None:
    env = current_environment({"NEXTBUY_HOME": str(tmp_path)})
    assert env.name == "local"
    assert env.warehouse_path == tmp_path / "warehouse.duckdb"
    assert env.dbt_target == "local"


def test_production_builds_with_the_bigquery_target(tmp_path: Path) -> None:
    env = current_environment({"NEXTBUY_HOME": str(tmp_path), "NEXTBUY_ENV": "production"})
    assert env.dbt_target == "bigquery"


def test_unknown_environment_is_refused() -> None:
    with pytest.raises(ValueError, match="NEXTBUY_ENV must be 'local' or 'production'"):
        current_environment({"NEXTBUY_ENV": "staging"})


def test_telemetry_is_off_unless_explicitly_set() -> None:
    environ = {"DO_NOT_TRACK": "0"}
    disable_telemetry(environ)
    assert environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "false"
    assert environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert environ["DO_NOT_TRACK"] == "0"  # a deliberate choice is respected
    assert set(TELEMETRY_OFF) <= set(environ)


def _raw() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(DEFAULT_PARAMETERS.read_text(encoding="utf-8"))


def test_parameters_file_is_typed_and_names_the_campaign_brands() -> None:
    params = load_parameters()
    assert "Calvin Klein" in params.campaign.target_brands
    assert isinstance(params.features.sequence_length, int)
    assert params.simulation.start.isoformat() == "2019-01-01"


def test_dbt_vars_and_suite_parameters_are_derived_from_the_settings() -> None:
    params = load_parameters()
    assert params.dbt_vars(as_of="2024-07-01") == {
        "target_brands": list(params.campaign.target_brands),
        "sequence_length": params.features.sequence_length,
        "examples": params.features.examples,
        "audience_top_percent": params.scoring.audience_top_percent,
        "as_of": "2024-07-01",
    }
    assert params.suite_parameters() == {
        "sequence_length": params.features.sequence_length,
        "deciles": params.scoring.deciles,
    }


def test_empty_brand_list_is_refused_by_name() -> None:
    raw = _raw()
    raw["campaign"]["target_brands"] = []
    with pytest.raises(ParametersError, match=r"campaign\.target_brands"):
        parse_parameters(raw)


def test_every_bad_setting_is_named_with_its_path() -> None:
    raw = _raw()
    raw["model"]["catboost_params"] = {}  # misspelt section
    raw["split"]["test_days"] = "four weeks"
    del raw["gate"]["margin"]
    with pytest.raises(ParametersError) as error:
        parse_parameters(raw, source="copy.yaml")
    message = str(error.value)
    assert message.startswith("copy.yaml: 3 invalid settings")
    assert "model.catboost_params: unknown setting" in message
    assert "split.test_days:" in message
    assert "gate.margin: missing" in message


def test_a_missing_or_malformed_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ParametersError, match=r"nope\.yaml: cannot read"):
        load_parameters(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("campaign: [unclosed", encoding="utf-8")
    with pytest.raises(ParametersError, match=r"bad\.yaml: not valid YAML"):
        load_parameters(bad)
    bad.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ParametersError, match="expected a mapping of sections"):
        load_parameters(bad)
