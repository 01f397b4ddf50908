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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make test` runs on every core with pytest-xdist (`--dist loadgroup`): each test
    file goes to one worker as a whole, so a module-scoped setup is made once; files that
    share a session- or package-scoped fixture (the dbt project's simulated shop, the
    serving package's shop) go to the same worker, so that setup too is made once."""
    shared: dict[str, set[str]] = {}
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        keys = shared.setdefault(str(item.path), set())
        if fixtures is None:
            continue
        for name, defs in fixtures.name2fixturedefs.items():
            # The project's own (a conftest's baseid is its folder); pytest's and plugins'
            # session fixtures (tmp_path_factory) are every worker's anyway.
            if defs and defs[-1].baseid and defs[-1].scope in ("session", "package"):
                keys.add(f"{defs[-1].baseid}::{name}")
    # Files that share a fixture are one group (union-find over the fixtures they use).
    parent = {path: path for path in shared}

    def root(path: str) -> str:
        while parent[path] != path:
            parent[path] = parent[parent[path]]
            path = parent[path]
        return path

    owner: dict[str, str] = {}
    for path, keys in shared.items():
        for key in keys:
            if key in owner:
                parent[root(path)] = root(owner[key])
            else:
                owner[key] = path
    for item in items:
        item.add_marker(pytest.mark.xdist_group(root(str(item.path))))
