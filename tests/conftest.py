from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may touch the developer's .nextbuy/, nor another test's MLflow store (MLflow
    writes the store it is pointed at into the environment)."""
    monkeypatch.setenv("NEXTBUY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    from thelook.warehouse import connect

    con = connect(tmp_path / "warehouse.duckdb")
    yield con
    con.close()
