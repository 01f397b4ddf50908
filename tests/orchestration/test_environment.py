from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.environment import TELEMETRY_OFF, current_environment, disable_telemetry
from orchestration.parameters import load_parameters, target_brands


def test_local_is_the_default_and_state_lives_under_home(tmp_path: Path) -> None:
    env = current_environment({"NEXTBUY_HOME": str(tmp_path)})
    assert env.name == "local"
    assert env.warehouse_path == tmp_path / "warehouse.duckdb"


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


def test_parameters_file_names_the_campaign_brands() -> None:
    assert "Calvin Klein" in target_brands(load_parameters())


def test_empty_brand_list_is_refused() -> None:
    with pytest.raises(ValueError, match="target_brands"):
        target_brands({"campaign": {"target_brands": []}})
