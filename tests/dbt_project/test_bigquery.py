"""Every model compiles for the BigQuery target, offline, and the SQL is BigQuery SQL.

The one mock in the suite: BigQuery's network. The adapter's connection is replaced by
one that refuses every call, so a model that would need to query BigQuery to compile
fails loudly here instead of hanging on Google's endpoints; relation lookups answer as
if the models did not exist yet (full build) or already existed (incremental build), and
the lookups an incremental build makes before it renders its SQL (a model's watermark,
the changed raw partitions, and, its data tests being scoped to the changed customers
with var changed_only, each test's watermark) get fixed answers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import sqlglot

from orchestration.dbt import DBT_PROJECT_DIR, dbt_env
from orchestration.environment import current_environment
from orchestration.settings import load_parameters

# DuckDB spellings that a missed adapter.dispatch would leave in BigQuery SQL.
DUCKDB_ONLY = [
    r"\bstrftime\(",
    r"\bepoch\(",
    r"\blist\(",
    r"\bstring_split\(",
    r"\bregexp_matches\(",
    r"\bhash\(",
    r"::",
]


class _Offline:
    """A BigQuery client that may be closed and nothing else."""

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        from dbt_common.exceptions import DbtRuntimeError

        raise DbtRuntimeError(f"offline compile check: the BigQuery client's {name} was called")


# What the offline warehouse answers an incremental build's lookups with.
WATERMARK = dt.datetime(2026, 11, 1, 6, 30, 0, 123456, tzinfo=dt.UTC)
CHANGED_PARTITIONS = ["20261030", "20261101", "__NULL__"]
CHANGED_PRODUCTS = 2
LEAKAGE_TEST = "assert_features_see_only_earlier_purchases"
TESTED_THROUGH = dt.datetime(2026, 10, 31, 6, 30, 0, 654321, tzinfo=dt.UTC)
LOG_START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
SCORED_THROUGH = dt.datetime(2026, 11, 1, 5, 0, tzinfo=dt.UTC)
NEW_SCORED_DATE = "2026-11-02"
# The as_of customer_features holds before the build (customer_features.sql).
HELD_AS_OF = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _lookup(sql: str) -> Any:
    """The answer to one of the queries incremental.sql runs; nothing else may be asked."""
    import agate
    from dbt_common.exceptions import DbtRuntimeError

    if "_incremental_watermarks" in sql:
        return agate.Table([[WATERMARK]], ["processed_through"], [agate.DateTime()])
    if "_data_test_watermarks" in sql:
        return agate.Table([[TESTED_THROUGH]], ["tested_through"], [agate.DateTime()])
    if "_product_fingerprints" in sql and "count(*)" in sql:
        return agate.Table([[CHANGED_PRODUCTS]], ["count"], [agate.Number()])
    if "stg_thelook__partitions" in sql and "select partition_id" in sql:
        return agate.Table([[p] for p in CHANGED_PARTITIONS], ["partition_id"], [agate.Text()])
    # int_score_outcomes (score_outcomes.sql): the change log began before its watermark
    # (not rebuilt), what it holds was published through SCORED_THROUGH, one date since.
    if "min(changed_at)" in sql and "int_customer_changes" in sql:
        return agate.Table([[LOG_START]], ["changed_at"], [agate.DateTime()])
    if "max(scored_at)" in sql and "int_score_outcomes" in sql:
        return agate.Table(
            [[SCORED_THROUGH, SCORED_THROUGH]],
            ["scored_at", "requested_at"],
            [agate.DateTime(), agate.DateTime()],
        )
    if "max(as_of)" in sql and "customer_features" in sql:
        return agate.Table([[HELD_AS_OF]], ["as_of"], [agate.DateTime()])
    if "stg_ml__customer_scores" in sql and "distinct" in sql:
        return agate.Table([[NEW_SCORED_DATE]], ["as_of"], [agate.Text()])
    raise DbtRuntimeError(f"offline compile check: unexpected query {sql[:200]}")


def _compile(target_path: Path, incremental: bool, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    from dbt.adapters.bigquery.connections import BigQueryConnectionManager
    from dbt.adapters.bigquery.impl import BigQueryAdapter
    from dbt.adapters.contracts.connection import ConnectionState
    from dbt.cli.main import dbtRunner

    def offline_open(cls: type, connection: Any) -> Any:
        connection.handle = _Offline()
        connection.state = ConnectionState.OPEN
        return connection

    def get_relation(self: BigQueryAdapter, database: str, schema: str, identifier: str) -> Any:
        if not incremental:
            return None
        return self.Relation.create(
            database=database, schema=schema, identifier=identifier, type="table"
        )

    def execute(self: BigQueryAdapter, sql: str, *args: Any, **kwargs: Any) -> Any:
        from dbt.adapters.contracts.connection import AdapterResponse

        return AdapterResponse(_message="offline"), _lookup(sql)

    monkeypatch.setenv("NEXTBUY_ENV", "production")
    for key, value in dbt_env(current_environment()).items():
        monkeypatch.setenv(key, value)
    assert os.environ["NEXTBUY_DBT_TARGET"] == "bigquery"
    monkeypatch.setenv("NEXTBUY_BQ_PROJECT", "shop-analytics")
    monkeypatch.chdir(DBT_PROJECT_DIR)
    with (
        mock.patch.object(BigQueryConnectionManager, "open", classmethod(offline_open)),
        mock.patch.object(
            BigQueryAdapter, "list_relations_without_caching", lambda self, relation: []
        ),
        mock.patch.object(BigQueryAdapter, "get_relation", get_relation),
        mock.patch.object(BigQueryAdapter, "execute", execute),
    ):
        # A brand with a quote proves string literals are escaped BigQuery's way.
        vars = load_parameters().dbt_vars()
        vars["target_brands"] = [*vars["target_brands"], "Levi's"]
        vars["changed_only"] = incremental
        result = dbtRunner().invoke(
            ["compile", "--target", "bigquery", "--project-dir", str(DBT_PROJECT_DIR),
             "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(target_path),
             "--vars", json.dumps(vars)]
        )  # fmt: skip
    assert result.success, result.exception
    return sorted((target_path / "compiled").rglob("*.sql"))


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, list[Path]]:
    """The compiled files of a full (False) and an incremental (True) build, once each."""
    out = {}
    for incremental in (False, True):
        with pytest.MonkeyPatch.context() as monkeypatch:
            out[incremental] = _compile(tmp_path_factory.mktemp("target"), incremental, monkeypatch)
    return out


@pytest.fixture(params=[False, True], ids=["full", "incremental"])
def compiled(request: pytest.FixtureRequest, builds: dict[bool, list[Path]]) -> list[Path]:
    return builds[request.param]


@pytest.fixture
def incremental(builds: dict[bool, list[Path]]) -> dict[str, str]:
    return {p.stem: p.read_text() for p in builds[True] if "/models/" in str(p)}


def _flat(sql: str) -> str:
    return " ".join(sql.split()).replace("( ", "(").replace(" )", ")")


def test_every_model_and_test_compiles_to_bigquery_sql(compiled: list[Path]) -> None:
    models = [
        p
        for p in compiled
        if "/models/" in str(p) and p.parent.name in ("staging", "intermediate", "marts")
    ]
    assert {p.stem for p in models} >= {
        "stg_thelook__products",
        "int_customer_history",
        "training_examples",
        "customer_features",
    }
    for path in compiled:
        sql = path.read_text()
        sqlglot.parse(sql, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE)
        for pattern in DUCKDB_ONLY:
            assert not re.search(pattern, sql, re.IGNORECASE), f"{path.name}: DuckDB-only {pattern}"
    products = next(p for p in models if p.stem == "int_orders").read_text()
    assert r"'Levi\'s'" in products


def test_incremental_build_reads_only_the_changed_partitions(incremental: dict[str, str]) -> None:
    """The changed partitions are literals with bounds on created_at, which BigQuery prunes
    on (it cannot prune on a subquery); the NULL partition is read by its own condition."""
    changes = " ".join(incremental["int_customer_changes"].split())
    assert "order_items.partition_id in ('20261030', '20261101', '__NULL__')" in changes
    assert (
        "((order_items.created_at >= cast('2026-10-30 00:00:00.000000' as timestamp)"
        " and order_items.created_at < cast('2026-11-02 00:00:00.000000' as timestamp))"
        " or (order_items.created_at is null))"
    ) in changes
    # Buyers of changed catalogue products, by BigQuery's fingerprint of the product.
    assert "or order_items.product_id in (" in changes
    assert "farm_fingerprint(to_json_string(struct(brand, department, category)))" in changes


def test_incremental_build_compares_with_the_watermark_as_a_literal(
    incremental: dict[str, str],
) -> None:
    examples = incremental["training_examples"]
    assert examples.count("changed_at > cast('2026-11-01 06:30:00.123456' as timestamp)") == 3
    assert "_incremental_watermarks" not in examples
    # The DuckDB-only hint to compute the filtered imports first is not BigQuery SQL.
    assert " as materialized" not in examples


def test_incremental_customer_features_recompute_the_changed_and_the_moved(
    incremental: dict[str, str],
) -> None:
    """customer_features recomputes the changed customers and those with a purchase
    between the as_of it holds and the new one, both as literals."""
    features = _flat(incremental["customer_features"])
    held = "cast('2026-11-01 00:00:00.000000' as timestamp)"
    assert f"last_order_at >= least({held}, cast(" in features
    assert f"last_order_at < greatest({held}, cast(" in features
    assert "changed_at > cast('2026-11-01 06:30:00.123456' as timestamp)" in features
    assert " as materialized" not in features


def test_incremental_build_scopes_tests_to_the_changed_customers(
    builds: dict[bool, list[Path]],
) -> None:
    """With changed_only, a test of an incrementally built model reads the customers
    logged since its own watermark (a literal); a full build's tests read whole tables."""
    incremental = {p.stem: p.read_text() for p in builds[True]}
    since = "changed_at > cast('2026-10-31 06:30:00.654321' as timestamp)"
    changed = (
        "(customer_id is null or customer_id in (select customer_id from "
        f"`shop-analytics`.`intermediate`.`int_customer_changes` where {since}))"
    )
    row_rule = _flat(incremental["between_training_examples_age__120__0"])
    assert f"from `shop-analytics`.`marts`.`training_examples` where {changed}" in row_rule
    # Uniqueness of another key: every row that shares a key with a changed row.
    key_rule = _flat(incremental["unique_training_examples_order_id"])
    assert (
        "where order_id in (select order_id from `shop-analytics`.`marts`.`training_examples`"
        f" where {changed})"
    ) in key_rule
    log_rule = _flat(incremental["not_null_int_customer_changes_changed_at"])
    assert f"(changed_at is null or {since})" in log_rule
    leakage = _flat(incremental[LEAKAGE_TEST])
    assert leakage.count(f"where {changed}") == 2
    # raw order_items as staged: the days loaded since the test last passed, as literals.
    staged = _flat(incremental["unique_stg_thelook__order_items_order_item_id"])
    assert "partition_id in ('20261030', '20261101', '__NULL__')" in staged
    assert "(order_items.created_at" not in staged and "or (created_at is null)" in staged
    # customer_features has a new as_of every day: every row is new, its tests read all.
    assert "int_customer_changes" not in incremental["positive_customer_features_prior_orders"]
    full = {p.stem: p.read_text() for p in builds[False]}
    for name in ("between_training_examples_age__120__0", LEAKAGE_TEST):
        assert "int_customer_changes" not in full[name]
