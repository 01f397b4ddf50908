"""The shipped GX suites, run by real Great Expectations on real DuckDB files.

The tables are built here with DuckDB, shaped like the dbt marts and the scoring asset's
output (same columns and types), with plausible values: much faster than running dbt,
and every test plants exactly the defect it is about. The marts' row rules (keys, nulls,
ranges, sequences, column types) are dbt's, and their planted defects are in
tests/dbt_project/test_contracts.py; expectations/README.md says what is checked where.

Kept whole: every test plants its defect in the same table builders, defined here once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from orchestration.defs.quality.gx import (
    ValidationOutcome,
    load_suite,
    validate_table,
    warehouse_url,
)
from orchestration.settings import load_parameters

PARAMETERS = load_parameters()
SUITE_PARAMETERS = PARAMETERS.suite_parameters()
SEQUENCE_LENGTH = PARAMETERS.features.sequence_length
DECILES = PARAMETERS.scoring.deciles
AS_OF = dt.datetime(2026, 11, 1)

# Column names and types as dbt builds the marts (DESCRIBE on a built warehouse).
FEATURE_COLUMNS = [
    ("gender", "VARCHAR"),
    ("country", "VARCHAR"),
    ("city", "VARCHAR"),
    ("traffic_source", "VARCHAR"),
    ("age", "BIGINT"),
    ("prior_orders", "BIGINT"),
    ("prior_items", "BIGINT"),
    ("days_since_last_order", "DOUBLE"),
    ("days_since_first_order", "DOUBLE"),
    ("days_since_signup", "DOUBLE"),
    ("avg_item_price", "DOUBLE"),
    ("last_item_price", "DOUBLE"),
    ("prior_target_brand_share", "DOUBLE"),
    ("brand_sequence", "VARCHAR"),
    ("department_sequence", "VARCHAR"),
    ("category_sequence", "VARCHAR"),
]
EXAMPLE_COLUMNS = [
    ("customer_id", "BIGINT"),
    ("order_id", "BIGINT"),
    ("as_of", "TIMESTAMP"),
    ("label", "INTEGER"),
    *FEATURE_COLUMNS,
    ("_source_modified_at", "TIMESTAMP"),
]
CUSTOMER_COLUMNS = [("customer_id", "BIGINT"), ("as_of", "TIMESTAMP"), *FEATURE_COLUMNS]
SCORE_COLUMNS = [
    ("customer_id", "BIGINT"),
    ("score", "DOUBLE"),
    ("decile", "BIGINT"),
    ("model_name", "VARCHAR"),
    ("model_version", "VARCHAR"),
    ("as_of", "DATE"),
    ("scored_at", "TIMESTAMP"),
]
TABLES = {
    "marts.training_examples": EXAMPLE_COLUMNS,
    "marts.customer_features": CUSTOMER_COLUMNS,
    "ml.customer_scores": SCORE_COLUMNS,
}

BRANDS = ["Calvin Klein", "Levi's", "Hanes", "Carhartt", "Columbia", "Nike", "Allegra K"]
CATEGORIES = ["Jeans", "Tops & Tees", "Outerwear & Coats", "Swim", "Socks", "Sweaters"]


def _features(rng: np.random.Generator, n: int) -> dict[str, Any]:
    prior_orders = rng.integers(1, 4, n)
    prior_items = prior_orders + rng.integers(0, 3, n)
    gender = rng.choice(["F", "M"], n)
    length = np.minimum(prior_items, SEQUENCE_LENGTH)
    last = rng.uniform(0.01, 400, n)
    first = last + rng.uniform(0, 600, n) * (prior_orders > 1)
    return {
        "gender": gender,
        "country": rng.choice(["United States", "China", "Brasil", "France"], n),
        "city": [None if i % 97 == 0 else f"City {i % 13}" for i in range(n)],
        "traffic_source": rng.choice(["Search", "Organic", "Facebook", "Email", "Display"], n),
        "age": rng.integers(12, 71, n),
        "prior_orders": prior_orders,
        "prior_items": prior_items,
        "days_since_last_order": last,
        "days_since_first_order": first,
        "days_since_signup": first + rng.uniform(0, 300, n),
        "avg_item_price": rng.uniform(2, 150, n),
        "last_item_price": rng.uniform(2, 150, n),
        "prior_target_brand_share": rng.choice([0.0, 0.0, 0.0, 0.5, 1.0], n),
        "brand_sequence": [";".join(rng.choice(BRANDS, k)) for k in length],
        "department_sequence": [
            ";".join(["Women" if g == "F" else "Men"] * k)
            for g, k in zip(gender, length, strict=True)
        ],
        "category_sequence": [";".join(rng.choice(CATEGORIES, k)) for k in length],
    }


def training_examples(n: int = 300, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    as_of = [AS_OF - dt.timedelta(days=int(d)) for d in rng.integers(1, 700, n)]
    return pd.DataFrame(
        {
            "customer_id": rng.integers(1, n // 2, n),
            "order_id": np.arange(1, n + 1),
            "as_of": as_of,
            "label": (rng.random(n) < 0.2).astype(int),
            **_features(rng, n),
            "_source_modified_at": AS_OF,
        }
    )


def customer_features(n: int = 300, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"customer_id": np.arange(1, n + 1), "as_of": AS_OF, **_features(rng, n)})


def customer_scores(n: int = 300, seed: int = 3, as_of: dt.date | None = None) -> pd.DataFrame:
    as_of = as_of or AS_OF.date()
    rng = np.random.default_rng(seed)
    score = rng.beta(2, 8, n)
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.argsort(-score, kind="stable")] = np.arange(n)
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1),
            "score": score,
            "decile": ranks * DECILES // n + 1,
            "model_name": "nextbuy-brand-propensity",
            "model_version": "3",
            "as_of": as_of,
            "scored_at": dt.datetime.combine(as_of, dt.time(6, 30)),
        }
    )


GOOD = {
    "marts.training_examples": training_examples,
    "marts.customer_features": customer_features,
    "ml.customer_scores": customer_scores,
}
SUITES = {
    "marts.training_examples": "training_examples",
    "marts.customer_features": "customer_features",
    "ml.customer_scores": "customer_scores",
}

WarehouseFactory = Callable[..., Path]


@pytest.fixture
def make_warehouse(tmp_path: Path) -> WarehouseFactory:
    """A DuckDB file holding the given tables (default: every table, good), closed."""

    def make(**frames: pd.DataFrame) -> Path:
        path = tmp_path / "warehouse.duckdb"
        con = duckdb.connect(str(path))
        try:
            for table, frame in frames.items():
                table = table.replace("__", ".")
                con.execute(f"create schema if not exists {table.split('.')[0]}")
                columns = ", ".join(f"{name} {type_}" for name, type_ in TABLES[table])
                con.execute(f"create or replace table {table} ({columns})")
                con.register("frame", frame)
                con.execute(f"insert into {table} by name select * from frame")
                con.unregister("frame")
        finally:
            con.close()
        return path

    return make


def validate(
    path: Path, table: str, parameters: dict[str, Any] | None = None, **kwargs: Any
) -> ValidationOutcome:
    return validate_table(
        warehouse_url(path),
        table,
        SUITES[table],
        SUITE_PARAMETERS if parameters is None else parameters,
        **kwargs,
    )


def _key(table: str) -> str:
    return table.replace(".", "__")


@pytest.mark.parametrize("table", list(SUITES))
def test_good_tables_pass_their_suite(make_warehouse: WarehouseFactory, table: str) -> None:
    path = make_warehouse(**{_key(table): GOOD[table]()})
    outcome = validate(path, table)
    assert outcome.success, outcome.summary()
    assert outcome.failures == []
    assert outcome.evaluated == len(load_suite(SUITES[table]).expectations)
    assert "passed" in outcome.summary()
    metadata = outcome.as_metadata()
    assert metadata["failed_expectations"] == 0
    assert metadata["evaluated_expectations"] == outcome.evaluated
    assert metadata["failures"].records == []


@pytest.mark.parametrize("table", ["marts.training_examples", "marts.customer_features"])
def test_mart_suites_hold_only_whole_table_checks(table: str) -> None:
    # Row rules are dbt's (tests and contract): an expectation here is an aggregate over
    # the table or tolerates a share of rows, or it checks a row twice.
    whole_table = {
        "expect_table_row_count_to_be_between",
        "expect_column_mean_to_be_between",
        "expect_column_max_to_be_between",
    }
    for expectation in load_suite(SUITES[table]).expectations:
        config = expectation.configuration
        assert config.type in whole_table or config.kwargs.get("mostly", 1) < 1, config.type


def test_a_label_rate_outside_its_band_fails_and_is_named(
    make_warehouse: WarehouseFactory,
) -> None:
    examples = training_examples()
    examples["label"] = 1
    outcome = validate(make_warehouse(marts__training_examples=examples), "marts.training_examples")
    assert not outcome.success
    [failure] = outcome.failures
    assert (failure.expectation_type, failure.column) == (
        "expect_column_mean_to_be_between",
        "label",
    )
    assert failure.observed_value == pytest.approx(1.0)
    summary = outcome.summary()
    assert "expect_column_mean_to_be_between on label" in summary and "observed 1" in summary


def test_failures_are_a_dagster_table_in_the_metadata(make_warehouse: WarehouseFactory) -> None:
    import dagster as dg

    examples = training_examples()
    examples["label"] = 1
    examples["age"] = examples["age"] * 12  # months for years
    outcome = validate(make_warehouse(marts__training_examples=examples), "marts.training_examples")
    metadata = outcome.as_metadata()
    assert metadata["failed_expectations"] == 2
    table = metadata["failures"]
    assert isinstance(table, dg.TableMetadataValue)
    assert [column.name for column in table.schema.columns] == [
        "expectation",
        "column",
        "arguments",
        "observed",
    ]
    rows = {record.data["column"]: record.data for record in table.records}
    assert rows["label"] == {
        "expectation": "expect_column_mean_to_be_between",
        "column": "label",
        "arguments": "min_value=0.01, max_value=0.6",
        "observed": "observed 1",
    }
    assert rows["age"]["expectation"] == "expect_column_mean_to_be_between"
    assert rows["age"]["arguments"] == "min_value=20, max_value=65"
    observed_age = float(rows["age"]["observed"].removeprefix("observed "))
    assert observed_age == pytest.approx(examples["age"].mean(), rel=1e-3)
    # What Dagster stores and shows: the table survives its serialisation.
    assert dg.deserialize_value(dg.serialize_value(table), dg.TableMetadataValue) == table


def _broken_join(frame: pd.DataFrame) -> pd.DataFrame:
    frame["gender"] = frame["gender"].where(frame.index % 10 != 0)  # 10% unjoined users
    return frame


def _renamed_channels(frame: pd.DataFrame) -> pd.DataFrame:
    frame["traffic_source"] = frame["traffic_source"].str.lower()
    return frame


def _signups_after_orders(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[frame.index % 20 == 0, "days_since_signup"] = -3.0  # 5%: a time-zone bug
    return frame


def _truncated_sequences(frame: pd.DataFrame) -> pd.DataFrame:
    for column in ("brand_sequence", "department_sequence", "category_sequence"):
        frame[column] = frame[column].str.split(";").str[-1]
    return frame


def _no_target_brand(frame: pd.DataFrame) -> pd.DataFrame:
    frame["prior_target_brand_share"] = 0.0
    return frame


@pytest.mark.parametrize(
    ("table", "plant", "failed"),
    [
        ("marts.customer_features", _broken_join, ("expect_column_values_to_not_be_null", "gender")),
        ("marts.training_examples", _renamed_channels, ("expect_column_values_to_be_in_set", "traffic_source")),
        ("marts.customer_features", _signups_after_orders, ("expect_column_values_to_be_between", "days_since_signup")),
        ("marts.training_examples", _truncated_sequences, ("expect_column_max_to_be_between", "brand_sequence_items")),
        ("marts.customer_features", _no_target_brand, ("expect_column_mean_to_be_between", "prior_target_brand_share")),
    ],
    ids=["broken_users_join", "renamed_channels", "signups_after_orders", "truncated_sequences", "no_target_brand"],
)  # fmt: skip
def test_a_whole_table_defect_fails_its_expectation_alone(
    make_warehouse: WarehouseFactory,
    table: str,
    plant: Callable[[pd.DataFrame], pd.DataFrame],
    failed: tuple[str, str],
) -> None:
    # Each defect is one a row rule cannot see: every row is plausible, the table is not.
    outcome = validate(make_warehouse(**{_key(table): plant(GOOD[table]())}), table)
    assert [(f.expectation_type, f.column) for f in outcome.failures] == [failed]
    assert outcome.failures[0].observed_value is not None or outcome.failures[0].unexpected_count


def test_scores_and_deciles_out_of_range_fail(make_warehouse: WarehouseFactory) -> None:
    scores = customer_scores()
    scores.loc[0, "score"] = 1.5
    scores.loc[1, "decile"] = DECILES + 1
    outcome = validate(make_warehouse(ml__customer_scores=scores), "ml.customer_scores")
    failed = {(f.expectation_type, f.column): f for f in outcome.failures}
    assert failed[("expect_column_values_to_be_between", "score")].unexpected_sample == (1.5,)
    decile = failed[("expect_column_values_to_be_between", "decile")]
    assert decile.unexpected_sample == (DECILES + 1,)
    assert f"max_value={DECILES}" in decile.kwargs


def test_scores_of_two_dates_in_one_batch_fail(make_warehouse: WarehouseFactory) -> None:
    # The suite validates one scoring date (the staged batch): two dates in it, one by
    # another model with a score out of range, break uniqueness, the date and the range.
    older = customer_scores(as_of=AS_OF.date() - dt.timedelta(days=1))
    older["model_version"] = "2"
    older.loc[0, "score"] = -0.5
    scores = pd.concat([older, customer_scores()], ignore_index=True)
    path = make_warehouse(ml__customer_scores=scores)
    whole = validate(path, "ml.customer_scores")
    failed = {(f.expectation_type, f.column) for f in whole.failures}
    assert {
        ("expect_column_values_to_be_unique", "customer_id"),
        ("expect_column_unique_value_count_to_be_between", "as_of"),
        ("expect_column_values_to_be_between", "score"),
    } <= failed


def test_a_null_score_key_fails_naming_the_column(make_warehouse: WarehouseFactory) -> None:
    scores = customer_scores()
    scores["customer_id"] = scores["customer_id"].astype("Int64")
    scores.loc[5, "customer_id"] = pd.NA
    outcome = validate(make_warehouse(ml__customer_scores=scores), "ml.customer_scores")
    assert [(f.expectation_type, f.column) for f in outcome.failures] == [
        ("expect_column_values_to_not_be_null", "customer_id")
    ]
    assert outcome.failures[0].unexpected_count == 1
    assert "expect_column_values_to_not_be_null on customer_id" in outcome.summary()


def test_an_unexpected_score_column_fails_naming_it(make_warehouse: WarehouseFactory) -> None:
    # No dbt contract sees the staged scores: their column set is the suite's.
    path = make_warehouse()
    con = duckdb.connect(str(path))
    con.execute("create schema ml")
    con.register("frame", customer_scores().assign(rank=1))
    con.execute("create table ml.customer_scores as select * from frame")
    con.close()
    outcome = validate(path, "ml.customer_scores")
    [schema] = outcome.failures
    assert schema.expectation_type == "expect_table_columns_to_match_set"
    assert schema.observed_value == {"unexpected": ["rank"]}


def test_suite_parameters_drive_the_sequence_length_expectations(
    make_warehouse: WarehouseFactory,
) -> None:
    path = make_warehouse(marts__training_examples=training_examples())
    assert validate(path, "marts.training_examples").success
    shorter = {**SUITE_PARAMETERS, "sequence_length": 2}
    outcome = validate(path, "marts.training_examples", parameters=shorter)
    [too_long] = outcome.failures
    assert (too_long.expectation_type, too_long.column) == (
        "expect_column_mean_to_be_between",
        "brand_sequence_items",
    )
    assert "max_value=2" in too_long.kwargs and too_long.observed_value > 2


def test_a_missing_suite_parameter_is_refused(make_warehouse: WarehouseFactory) -> None:
    path = make_warehouse(ml__customer_scores=customer_scores())
    with pytest.raises(ValueError, match="deciles"):
        validate(path, "ml.customer_scores", parameters={"sequence_length": SEQUENCE_LENGTH})


def test_a_missing_column_fails_only_the_expectations_on_it(
    make_warehouse: WarehouseFactory,
) -> None:
    # dbt's contract refuses to build a mart without it; should one arrive anyway, the
    # measure derived from it fails alone, not the whole batch query.
    features = customer_features().drop(columns=["brand_sequence"])
    path = make_warehouse()
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.register("frame", features)
    con.execute("create table marts.customer_features as select * from frame")
    con.close()
    outcome = validate(path, "marts.customer_features")
    assert {f.column for f in outcome.failures} == {"brand_sequence_items"}
    assert all(f.error for f in outcome.failures)
    assert outcome.evaluated == len(load_suite("customer_features").expectations)


def test_a_missing_table_raises_lookup_error_naming_it(make_warehouse: WarehouseFactory) -> None:
    path = make_warehouse(marts__training_examples=training_examples())
    with pytest.raises(LookupError, match=r"marts\.customer_features"):
        validate(path, "marts.customer_features")


def test_a_missing_suite_raises_file_not_found_naming_the_path(
    make_warehouse: WarehouseFactory, tmp_path: Path
) -> None:
    path = make_warehouse(marts__training_examples=training_examples())
    with pytest.raises(FileNotFoundError, match=r"nowhere\.json"):
        validate_table(warehouse_url(path), "marts.training_examples", "nowhere", {})
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "training_examples.json")):
        validate_table(
            warehouse_url(path),
            "marts.training_examples",
            "training_examples",
            SUITE_PARAMETERS,
            suites_dir=tmp_path,
        )


def test_validation_releases_the_file_and_leaves_it_unchanged(
    make_warehouse: WarehouseFactory,
) -> None:
    path = make_warehouse(marts__training_examples=training_examples())
    before = path.read_bytes()
    assert validate(path, "marts.training_examples").success
    assert path.read_bytes() == before
    # The next step of a run opens the file for writing in the same process: DuckDB
    # refuses that while a read-only handle is still open.
    con = duckdb.connect(str(path))
    con.execute("create table marts.after_validation as select 1 as x")
    con.close()


def _as_view(path: Path, table: str) -> None:
    """The table becomes a view over a copy of its rows, as dbt builds customer_features."""
    con = duckdb.connect(str(path))
    con.execute(f"alter table {table} rename to {table.split('.')[1]}_rows")
    con.execute(f"create view {table} as select * from {table}_rows")
    con.close()


@pytest.mark.parametrize(
    ("plant", "failures"),
    [(lambda frame: frame, 0), (lambda frame: _no_target_brand(_broken_join(frame)), 2)],
    ids=["good", "two_defects"],
)
def test_a_view_is_validated_from_one_computation_with_the_same_outcome(
    make_warehouse: WarehouseFactory,
    plant: Callable[[pd.DataFrame], pd.DataFrame],
    failures: int,
) -> None:
    import sqlalchemy as sa

    table = "marts.customer_features"
    path = make_warehouse(marts__customer_features=plant(customer_features()))
    as_table = validate(path, table)
    assert len(as_table.failures) == failures
    _as_view(path, table)
    before = path.read_bytes()
    statements: list[str] = []

    def record(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.split()))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        as_view = validate(path, table)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    # The same suite outcome, failures, observed values and metadata as on a table...
    assert as_view == as_table
    assert as_view.as_metadata() == as_table.as_metadata()
    # ...from one computation of the view: a temporary table that every expectation
    # queries, dropped at the end. (Beside it, only the check that each derived column
    # computes, which fetches no row.)
    reads = [s for s in statements if table in s and not s.endswith("limit 0")]
    assert len(reads) == 1 and reads[0].startswith("create temporary table gx_batch_"), reads
    temporary = reads[0].split()[3]
    queries = [s for s in statements if temporary in s]
    assert len(queries) > len(load_suite("customer_features").expectations) // 2
    assert queries[-1] == f"drop table if exists {temporary}"
    # The file is untouched and free for the next step to write.
    assert path.read_bytes() == before
    con = duckdb.connect(str(path))
    con.execute("create table marts.after_validation as select 1 as x")
    con.close()
