"""dbt models built for real: dbt-duckdb on DuckDB files in temporary folders."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from orchestration.dbt import SCORING_SELECTOR, dbt_env, run_dbt
from orchestration.environment import current_environment
from orchestration.settings import load_parameters
from thelook import simulator
from thelook.warehouse import connect

MART_KEYS = {
    "marts.training_examples": ["customer_id", "order_id"],
    "marts.customer_features": ["customer_id"],
    "intermediate.int_orders": ["order_id"],
    "intermediate.int_purchase_items": ["order_item_id"],
    "intermediate.int_customer_history": ["customer_id", "order_number"],
}
AS_OF = dt.date(2024, 7, 1)


def build(warehouse: Path, *args: str, **vars: object) -> str:
    """`dbt build` of the feature models on this warehouse; returns dbt's output, fails the
    test on error. (The scoring models need the pipeline's scores: tests/orchestration.)"""
    return _dbt("build", warehouse, *args, **vars)


def run_models(warehouse: Path, *args: str, **vars: object) -> str:
    """`dbt run` of the feature models: `build` without the data tests, for tests about
    what the models hold (the data tests are a third of a build's nodes and most of its
    time on a small shop)."""
    return _dbt("run", warehouse, *args, **vars)


def _dbt(command: str, warehouse: Path, *args: str, **vars: object) -> str:
    result = run_dbt(
        [command, "--exclude", SCORING_SELECTOR, *args], warehouse=warehouse, vars=vars, check=False
    )
    assert result.returncode == 0, result.stdout[-6000:]
    return result.stdout


def dbt_target(warehouse: Path) -> Path:
    """Where dbt writes its artefacts for this warehouse (beside it)."""
    return Path(dbt_env(current_environment(), warehouse)["DBT_TARGET_PATH"])


def compiled_test(warehouse: Path, name: str) -> str:
    """The SQL of a data test as the last dbt command on this warehouse compiled it."""
    [path] = (dbt_target(warehouse) / "compiled").rglob(f"{name}.sql")
    return path.read_text()


def table(warehouse: Path, name: str) -> pd.DataFrame:
    """A built table sorted by its key, without the incremental watermark."""
    con = duckdb.connect(str(warehouse), read_only=True)
    frame = con.execute(f"select * from {name}").df()
    con.close()
    frame = frame.drop(columns=["_source_modified_at"], errors="ignore")
    return frame.sort_values(MART_KEYS[name]).reset_index(drop=True)


def simulate_small(
    warehouse: Path, users: int = 1500, end: dt.date = dt.date(2024, 6, 30), seed: int = 7
) -> None:
    params = load_parameters()
    settings = params.simulation.with_overrides(users=users, end=end, seed=seed)
    con = connect(warehouse)
    simulator.simulate(con, settings, params.campaign.target_brands)
    con.close()


@pytest.fixture(scope="session")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small behavioural shop, built once for the session: tests read it, or copy it
    before they change anything."""
    warehouse = tmp_path_factory.mktemp("dbt") / "warehouse.duckdb"
    simulate_small(warehouse)
    build(warehouse, as_of=AS_OF.isoformat())
    return warehouse


@pytest.fixture
def raw_frames() -> Callable[[Path], dict[str, pd.DataFrame]]:
    from tests.dbt_project.notebook_features import read_raw

    def read(warehouse: Path) -> dict[str, pd.DataFrame]:
        con = duckdb.connect(str(warehouse), read_only=True)
        frames = read_raw(con)
        con.close()
        return frames

    return read
