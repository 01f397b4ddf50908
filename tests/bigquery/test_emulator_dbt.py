"""The dbt project's production target, built end to end on a local BigQuery emulator.

A small thelook export (tests/fixtures/thelook_google, Google's own generator) is loaded
into the emulator's `raw` dataset by BigQuery load jobs, with the schema of the public
dataset; then `dbt build --target bigquery` builds and tests staging, intermediate and
both marts, and a second build on the same data changes nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.cloud import bigquery

from orchestration.dbt import SCORING_SELECTOR, dbt_invocation, dbt_resource, dbt_target_path
from orchestration.environment import current_environment
from orchestration.settings import load_parameters
from tests.bigquery.emulator import Emulator
from tests.bigquery.raw import copy_raw
from tests.conftest import FIXTURES
from thelook.loader import load_export
from thelook.warehouse import connect

RAW_EXPORT = FIXTURES / "thelook_google"
DBT_DATASET = "nextbuy"
BUILT_DATASETS = ("intermediate", "marts")
MARTS = ("training_examples", "customer_features")
# Bounds on every call to the emulator, so that a hung emulator fails the test.
CALL_TIMEOUT = 60.0
RETRY = bigquery.DEFAULT_RETRY.with_timeout(CALL_TIMEOUT)
DBT_TIMEOUT = 900.0


def _load_raw(client: bigquery.Client, workdir: Path) -> str:
    """Load RAW_EXPORT into the dataset `raw` as the public dataset types it (the project's
    own loader reads the export, so quirks are handled as locally); returns the as-of
    date of its newest complete day."""
    warehouse = workdir / "export.duckdb"
    con = connect(warehouse)
    try:
        load_export(con, [RAW_EXPORT])
    finally:
        con.close()
    return copy_raw(client, warehouse)


@dataclass(frozen=True)
class Build:
    returncode: int
    log: str
    # dbt's run_results.json: node unique_id -> status.
    statuses: dict[str, str]
    # Every model table of BUILT_DATASETS ("dataset.table") -> its row count after the build.
    row_counts: dict[str, int]


def _dbt_build(client: bigquery.Client, as_of: str) -> Build:
    """`dbt build` of the feature models on the bigquery target, as the pipeline's
    feature step runs it, killed after DBT_TIMEOUT."""
    invocation = dbt_invocation(
        dbt_resource(fetch_metadata=False),
        ["build", "--exclude", SCORING_SELECTOR],
        params=load_parameters(),
        as_of=as_of,
        raise_on_error=False,
    )
    watchdog = threading.Timer(DBT_TIMEOUT, invocation.process.kill)
    watchdog.start()
    try:
        log = "\n".join(str(event) for event in invocation.stream_raw_events())
        returncode = invocation.process.wait()
    finally:
        watchdog.cancel()
    results = json.loads((dbt_target_path(current_environment()) / "run_results.json").read_text())
    return Build(
        returncode=returncode,
        log=log,
        statuses={r["unique_id"]: r["status"] for r in results["results"]},
        row_counts=_row_counts(client),
    )


def _row_counts(client: bigquery.Client) -> dict[str, int]:
    counts = {}
    for dataset in BUILT_DATASETS:
        for table in client.list_tables(dataset, retry=RETRY, timeout=CALL_TIMEOUT):
            # `_`: the state of incremental builds and scoped tests, logs that every run
            # appends to (macros/incremental.sql), not models.
            if table.table_id.startswith("_"):
                continue
            name = f"{dataset}.{table.table_id}"
            query = client.query(f"select count(*) from `{name}`", timeout=CALL_TIMEOUT)
            counts[name] = next(iter(query.result(timeout=CALL_TIMEOUT)))[0]
    return counts


@pytest.fixture(scope="module")
def builds(
    bigquery_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Build, Build]]:
    """The raw export loaded, then two builds of the same data."""
    workdir = tmp_path_factory.mktemp("bigquery_dbt")
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            **bigquery_emulator.env,
            "NEXTBUY_ENV": "production",
            "NEXTBUY_HOME": str(workdir / "home"),
            "NEXTBUY_BQ_PROJECT": bigquery_emulator.project,
            "NEXTBUY_BQ_DATASET": DBT_DATASET,
            "NEXTBUY_BQ_METHOD": "oauth",
            "NEXTBUY_BQ_LOCATION": "US",
        }.items():
            env.setenv(name, value)
        env.delenv("NEXTBUY_BQ_KEYFILE", raising=False)
        client = bigquery.Client(project=bigquery_emulator.project)
        try:
            as_of = _load_raw(client, workdir)
            first = _dbt_build(client, as_of)
            second = _dbt_build(client, as_of)
        finally:
            client.close()
    yield first, second


def _failures(build: Build) -> dict[str, str]:
    """Models that were not built and data tests that did not pass (exposures are no-ops)."""
    return {
        node: status
        for node, status in build.statuses.items()
        if node.split(".")[0] in ("model", "test") and status not in ("success", "pass")
    }


def test_full_build_passes_every_dbt_test(builds: tuple[Build, Build]) -> None:
    first, _ = builds
    assert first.returncode == 0, first.log[-6000:]
    assert not _failures(first), _failures(first)
    tests = [node for node in first.statuses if node.startswith("test.")]
    models = [node for node in first.statuses if node.startswith("model.")]
    assert len(tests) > 20 and len(models) >= 10, first.statuses


def test_marts_have_rows(builds: tuple[Build, Build]) -> None:
    first, _ = builds
    for mart in MARTS:
        assert first.row_counts.get(f"marts.{mart}", 0) > 0, first.row_counts


def test_rerun_on_same_data_changes_nothing(builds: tuple[Build, Build]) -> None:
    first, second = builds
    assert second.returncode == 0, second.log[-6000:]
    assert not _failures(second), _failures(second)
    assert second.row_counts == first.row_counts
