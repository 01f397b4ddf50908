from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# Test folders whose files share a session- or package-scoped fixture: the dbt project's
# simulated shop (tests/dbt_project/conftest.py), the serving package's shop, the model
# settings of tests/ml, the BigQuery emulator of tests/bigquery (run by `make
# test-bigquery`; `make test` leaves it out). Under
# pytest-xdist each of these folders runs on one worker, every other test file on one
# worker of its own, so that every expensive setup is made once.
SHARED_SETUP_FOLDERS = ("tests/dbt_project", "tests/ml", "tests/serving", "tests/bigquery")


def _worker_group(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    for folder in SHARED_SETUP_FOLDERS:
        if path.startswith(folder + "/"):
            return folder
    return path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test` runs on every core (`-n auto --dist loadgroup`). xdist's own loadgroup
    reads `xdist_group` marks into node ids, which pytest 9.2 no longer lets it rewrite
    (every test then went its own way, and module fixtures were set up on both
    workers); this scheduler groups by `_worker_group` instead."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkerGroup(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return _worker_group(nodeid)

    return ByWorkerGroup(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fail collection when two test files share a session- or package-scoped fixture of
    the project but would run on different workers (SHARED_SETUP_FOLDERS is then
    missing their folder): the setup would be made twice."""
    users: dict[str, set[str]] = {}
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        if fixtures is None:
            continue
        for name, defs in fixtures.name2fixturedefs.items():
            # The project's own (a conftest's baseid is its folder); pytest's and plugins'
            # session fixtures (tmp_path_factory) are every worker's anyway.
            if defs and defs[-1].baseid and defs[-1].scope in ("session", "package"):
                key = f"{defs[-1].baseid}::{name}"
                users.setdefault(key, set()).add(_worker_group(item.nodeid))
    split = {key: sorted(groups) for key, groups in users.items() if len(groups) > 1}
    if split:
        raise pytest.UsageError(
            "fixtures shared across worker groups (add their folder to "
            f"SHARED_SETUP_FOLDERS in tests/conftest.py): {split}"
        )
