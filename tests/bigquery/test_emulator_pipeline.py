"""`nextbuy pipeline` in production (NEXTBUY_ENV=production), end to end on the emulator.

A small simulated shop is made locally and its raw tables copied into the emulator by
load jobs (tests/bigquery/raw.py), in a project of their own. Then, as a team runs it:
- `nextbuy pipeline` builds the dbt project on the bigquery target, validates the marts
  with Great Expectations inside BigQuery, trains on marts read from BigQuery, publishes
  the scores into the as_of partition of the scores dataset (a setting: `propensity`
  here, never `ml` nor raw), builds the audience and the monitoring;
- a second `nextbuy pipeline` on the same data changes no score and no mart;
- a `daily` run killed after its scores are staged and validated, before they are
  published, leaves the published partition as it was; the next run publishes;
- `nextbuy audience --out` exports the audience from BigQuery;
- NEXTBUY_HOME never holds a DuckDB file: no step touched one.

Two settings exist for the emulator alone: NEXTBUY_BQ_PUBLISH=transaction (it knows no
partition decorators, so the copy job onto `table$YYYYMMDD` is replaced by one
transaction; the copy job is tested on recorded answers) and
NEXTBUY_BQ_STORAGE_READ_API=false (it cannot serve query results through the Storage
Read API).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from orchestration.bigquery_warehouse import BigQueryWarehouseResource
from orchestration.defs.quality.gx import ValidationOutcome, validate_table
from orchestration.settings import load_parameters
from tests.bigquery.emulator import Emulator
from tests.bigquery.raw import CALL_TIMEOUT, RETRY, copy_raw
from thelook.pause_points import PAUSE_AT_ENV

# A project of its own: test_emulator_dbt.py builds the same datasets in the default one.
PROJECT = "nextbuy-pipeline"
SCORES_DATASET = "propensity"
SCORES = f"{PROJECT}.{SCORES_DATASET}.customer_scores"
COMPARED = ["customer_id", "score", "decile", "model_name", "model_version", "as_of"]
BIN = Path(sys.executable).parent
# Bounds on each command: a hung emulator fails the test instead of hanging it.
COMMAND_TIMEOUT = 900.0
PAUSE_TIMEOUT = 600.0


@dataclass(frozen=True)
class Published:
    """ml.customer_scores (in the scores dataset) and the marts' row counts, at a moment."""

    scores: pd.DataFrame
    marts: dict[str, int]


@dataclass(frozen=True)
class Production:
    home: Path
    env: dict[str, str]
    as_of: str
    first: str
    second: str
    after_first: Published
    after_second: Published
    # The daily run killed at its publication: its output, and the state it left.
    paused: str
    after_kill: Published
    staged_after_kill: int
    # The next daily run: its output and the state after it.
    repaired: str
    after_repair: Published


def _parameters(path: Path) -> Path:
    """parameters.yaml with a five-month shop of loyal customers (few day partitions: the
    emulator inlines every partition into each query that reads them), a quicker model
    and test windows that shop fills."""
    params = load_parameters().model_dump(mode="json")
    params["simulation"].update(
        {"start": "2024-02-01", "end": "2024-06-30", "users": 2500, "loyalty_alpha": 8.0,
         "loyalty_beta": 1.0, "favourite_brands": 2}
    )  # fmt: skip
    params["model"]["catboost"]["iterations"] = 200
    params["tuning"]["trials"] = 1
    params["evaluation"]["bootstrap_samples"] = 100
    params["split"].update({"test_days": 21, "validation_days": 21, "folds": 2})
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{output[-8000:]}"
    return output


def _published(client: bigquery.Client) -> Published:
    rows = client.query(
        f"select * from `{SCORES}` order by as_of, customer_id", timeout=CALL_TIMEOUT
    ).result(timeout=CALL_TIMEOUT)
    marts = {}
    for name in ("training_examples", "customer_features", "campaign_audience"):
        query = client.query(f"select count(*) from `{PROJECT}.marts.{name}`", timeout=CALL_TIMEOUT)
        marts[name] = next(iter(query.result(timeout=CALL_TIMEOUT)))[0]
    return Published(rows.to_dataframe(create_bqstorage_client=False), marts)


def _staged_rows(client: bigquery.Client) -> int:
    try:
        client.get_table(f"{SCORES}__staged", retry=RETRY, timeout=CALL_TIMEOUT)
    except NotFound:
        return 0
    query = client.query(f"select count(*) from `{SCORES}__staged`", timeout=CALL_TIMEOUT)
    return int(next(iter(query.result(timeout=CALL_TIMEOUT)))[0])


def _paused_daily_run(env: dict[str, str]) -> str:
    """A `daily` run stopped where its scores are staged and validated and the replacing
    job is not yet sent, then killed (its whole process group); returns its output."""
    script = "from orchestration.pipeline import run_job; run_job('daily', None)"
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**env, PAUSE_AT_ENV: "scores-publishing"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines = []
    deadline = time.monotonic() + PAUSE_TIMEOUT
    try:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if "paused at scores-publishing" in line or time.monotonic() > deadline:
                break
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    output = "".join(lines)
    assert "paused at scores-publishing" in output, output[-8000:]
    return output


@pytest.fixture(scope="module")
def production(
    bigquery_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Production]:
    workdir = tmp_path_factory.mktemp("bigquery_pipeline")
    home = workdir / "home"
    base = {
        **os.environ,
        **bigquery_emulator.env,
        "NEXTBUY_PARAMETERS": str(_parameters(workdir / "parameters.yaml")),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    # The shop, simulated locally beside the home (never in it).
    shop = workdir / "shop.duckdb"
    _run(
        [str(BIN / "nextbuy"), "simulate", "--warehouse", str(shop)],
        {**base, "NEXTBUY_ENV": "local", "NEXTBUY_HOME": str(workdir / "simulation")},
    )
    env = {
        **base,
        "NEXTBUY_ENV": "production",
        "NEXTBUY_HOME": str(home),
        "NEXTBUY_BQ_PROJECT": PROJECT,
        "NEXTBUY_BQ_DATASET": "nextbuy",
        "NEXTBUY_BQ_SCORES_DATASET": SCORES_DATASET,
        "NEXTBUY_BQ_METHOD": "oauth",
        "NEXTBUY_BQ_LOCATION": "US",
        "NEXTBUY_BQ_STORAGE_READ_API": "false",
        "NEXTBUY_BQ_PUBLISH": "transaction",
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
    }
    env.pop("NEXTBUY_BQ_KEYFILE", None)
    with pytest.MonkeyPatch.context() as mp:
        # This process's own clients (the test's reads) talk to the emulator too.
        for name, value in bigquery_emulator.env.items():
            mp.setenv(name, value)
        client = bigquery.Client(project=PROJECT)
        try:
            as_of = copy_raw(client, shop)
            first = _run([str(BIN / "nextbuy"), "pipeline"], env)
            after_first = _published(client)
            second = _run([str(BIN / "nextbuy"), "pipeline"], env)
            after_second = _published(client)
            paused = _paused_daily_run(env)
            after_kill, staged = _published(client), _staged_rows(client)
            script = "from orchestration.pipeline import run_job; run_job('daily', None)"
            repaired = _run([sys.executable, "-c", script], env)
            after_repair = _published(client)
        finally:
            client.close()
        yield Production(
            home, env, as_of, first, second, after_first, after_second, paused, after_kill,
            staged, repaired, after_repair,
        )  # fmt: skip


def test_the_pipeline_scores_every_customer_into_the_scores_dataset(
    production: Production,
) -> None:
    scores, marts = production.after_first.scores, production.after_first.marts
    dates = {d.isoformat() for d in pd.to_datetime(scores["as_of"]).dt.date}
    assert dates == {production.as_of}, production.first[-4000:]
    assert len(scores) == marts["customer_features"] > 100
    assert scores["customer_id"].is_unique
    assert 0 < marts["campaign_audience"] < len(scores)
    client = bigquery.Client(project=PROJECT)
    try:
        table = client.get_table(SCORES, retry=RETRY, timeout=CALL_TIMEOUT)
        # Never the `ml` default nor raw: the setting is where the scores went.
        with pytest.raises(NotFound):
            client.get_dataset(f"{PROJECT}.ml", retry=RETRY, timeout=CALL_TIMEOUT)
    finally:
        client.close()
    assert table.time_partitioning is not None and table.time_partitioning.field == "as_of"
    assert table.clustering_fields == ["customer_id"]


def test_no_step_touches_a_duckdb_file(production: Production) -> None:
    assert production.home.is_dir()
    assert sorted(production.home.rglob("*.duckdb*")) == []


def test_a_rerun_on_the_same_data_changes_nothing(production: Production) -> None:
    first, second = production.after_first, production.after_second
    assert second.marts == first.marts
    pd.testing.assert_frame_equal(second.scores[COMPARED], first.scores[COMPARED])
    # Republished, not left alone: the partition was replaced by the same scores.
    assert (second.scores["scored_at"] > first.scores["scored_at"].max()).all()


def test_a_run_killed_before_publishing_leaves_the_partition_then_the_next_publishes(
    production: Production,
) -> None:
    before, killed = production.after_second, production.after_kill
    # Staged and validated, never published: every published row as it was.
    assert production.staged_after_kill == len(before.scores)
    pd.testing.assert_frame_equal(killed.scores, before.scores)
    repaired = production.after_repair
    pd.testing.assert_frame_equal(repaired.scores[COMPARED], before.scores[COMPARED])
    assert (repaired.scores["scored_at"] > before.scores["scored_at"].max()).all()
    client = bigquery.Client(project=PROJECT)
    try:
        assert _staged_rows(client) == 0
    finally:
        client.close()


def test_the_marts_are_validated_inside_bigquery(production: Production) -> None:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in production.env.items():
            mp.setenv(name, value)
        warehouse = BigQueryWarehouseResource.from_environment()
        suite_parameters = load_parameters().suite_parameters()

        def validate(table: str, suite: str) -> ValidationOutcome:
            return validate_table(
                warehouse.sqlalchemy_url(),
                table,
                suite,
                suite_parameters,
                relation=warehouse.relation(table),
            )

        passed = validate("marts.customer_features", "customer_features")
        # The wrong suite for the table: its expectations fail, named.
        failed = validate("marts.training_examples", "customer_scores")
    assert passed.success and passed.evaluated > 10, passed.failures
    assert not failed.success
    assert {f.column for f in failed.failures} >= {"score", "decile"}
    assert "gx_customer_features" in production.first


def test_the_audience_is_exported_from_bigquery(production: Production, tmp_path: Path) -> None:
    out = tmp_path / "audience.csv"
    shown = _run([str(BIN / "nextbuy"), "audience", "--out", str(out)], production.env)
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == production.after_repair.marts["campaign_audience"], shown
    assert {row["as_of"] for row in rows} == {production.as_of}
    assert [int(row["audience_rank"]) for row in rows] == list(range(1, len(rows) + 1))
