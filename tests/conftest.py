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


# Test folders whose files share a session- or package-scoped fixture: the
# serving package's shop, the model
# settings of tests/ml, the BigQuery emulator of tests/bigquery (run by `make
# test-bigquery`; `make test` leaves it out). Under
# pytest-xdist each of these folders runs on one worker, every other test file on one
# worker of its own, so that every expensive setup is made once.
SHARED_SETUP_FOLDERS = ("tests/ml", "tests/serving", "tests/bigquery")
# Files of a folder that share one of its session fixtures while the folder's other files
# need none: only these run together (tests/dbt_project's `simulated` shop,
# tests/orchestration's `small_shop`).
SHARED_SETUP_FILES = {
    "tests/dbt_project: simulated": (
        "tests/dbt_project/test_contracts.py",
        "tests/dbt_project/test_features.py",
        "tests/dbt_project/test_scoped_tests.py",
    ),
    "tests/orchestration: small_shop": (
        "tests/orchestration/test_doctor.py",
        "tests/orchestration/test_future_and_deletions.py",
        "tests/orchestration/test_cli.py",
    ),
}
# The groups that take longest (minutes each, measured with `--durations`), started
# first so that no long group is left alone at the end while the other worker idles;
# every other group follows in collection order.
SLOWEST_FIRST = (
    "tests/orchestration/test_pipeline.py",
    "tests/orchestration/test_kills.py",
    "tests/dbt_project/test_incremental.py",
    "tests/ui/test_browser.py",
    "tests/dbt_project: simulated",
    "tests/serving",
    "tests/orchestration: small_shop",
    "tests/orchestration/test_demo_thelook.py",
    "tests/orchestration/test_monitoring.py",
)


def _worker_group(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    for group, files in SHARED_SETUP_FILES.items():
        if path in files:
            return group
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

    # Groups in collection order, which pytest_collection_modifyitems made slowest first
    # (xdist would otherwise start the groups with the most tests first).
    config.option.loadscopereorder = False

    class ByWorkerGroup(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return _worker_group(nodeid)

    return ByWorkerGroup(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the slowest groups first (SLOWEST_FIRST; a stable sort, so every file keeps its
    own order), and fail collection when two test files share a session- or
    package-scoped fixture of the project but would run on different workers
    (SHARED_SETUP_FOLDERS or SHARED_SETUP_FILES is then missing them): the setup would
    be made twice."""
    rank = {group: i for i, group in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(_worker_group(item.nodeid), len(rank)))
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
            "fixtures shared across worker groups (add their folder to SHARED_SETUP_FOLDERS "
            f"or their files to SHARED_SETUP_FILES in tests/conftest.py): {split}"
        )
