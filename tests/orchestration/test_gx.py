"""The shipped GX suites, run by real Great Expectations on real DuckDB files.

The tables are built here with DuckDB, shaped like the dbt marts and the scoring asset's
output (same columns and types), with plausible values: much faster than running dbt,
and every test plants exactly the defect it is about.
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
    suite_parameters,
    validate_table,
    warehouse_url,
)
from orchestration.parameters import load_parameters

PARAMETERS = load_parameters()
SEQUENCE_LENGTH = int(PARAMETERS["features"]["sequence_length"])
DECILES = int(PARAMETERS["scoring"]["deciles"])
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
        suite_parameters(PARAMETERS) if parameters is None else parameters,
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
    metadata = outcome.as_metadata()
    assert metadata["failed_expectations"] == 1
    assert "expect_column_mean_to_be_between | label" in metadata["failures"].value


def test_a_null_key_fails_naming_the_column(make_warehouse: WarehouseFactory) -> None:
    features = customer_features()
    features["customer_id"] = features["customer_id"].astype("Int64")
    features.loc[5, "customer_id"] = pd.NA
    outcome = validate(make_warehouse(marts__customer_features=features), "marts.customer_features")
    assert not outcome.success
    failed = {(f.expectation_type, f.column): f for f in outcome.failures}
    null_check = failed[("expect_column_values_to_not_be_null", "customer_id")]
    assert null_check.unexpected_count == 1
    assert "expect_column_values_to_not_be_null on customer_id" in outcome.summary()


def test_a_duplicate_customer_fails(make_warehouse: WarehouseFactory) -> None:
    features = customer_features()
    features.loc[7, "customer_id"] = features.loc[8, "customer_id"]
    outcome = validate(make_warehouse(marts__customer_features=features), "marts.customer_features")
    assert [(f.expectation_type, f.column) for f in outcome.failures] == [
        ("expect_column_values_to_be_unique", "customer_id")
    ]
    assert outcome.failures[0].unexpected_count == 2
    assert "1 unexpected" not in outcome.summary() and "2 unexpected" in outcome.summary()


def test_a_duplicate_example_order_fails(make_warehouse: WarehouseFactory) -> None:
    examples = training_examples()
    examples.loc[3, "order_id"] = examples.loc[4, "order_id"]
    outcome = validate(make_warehouse(marts__training_examples=examples), "marts.training_examples")
    assert [(f.expectation_type, f.column) for f in outcome.failures] == [
        ("expect_column_values_to_be_unique", "order_id")
    ]


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


def test_suite_parameters_drive_the_sequence_length_expectations(
    make_warehouse: WarehouseFactory,
) -> None:
    path = make_warehouse(marts__training_examples=training_examples())
    assert validate(path, "marts.training_examples").success
    shorter = {**suite_parameters(PARAMETERS), "sequence_length": 2}
    outcome = validate(path, "marts.training_examples", parameters=shorter)
    failed = {(f.expectation_type, f.column): f for f in outcome.failures}
    too_long = failed[("expect_column_values_to_be_between", "brand_sequence_items")]
    assert "max_value=2" in too_long.kwargs
    assert too_long.unexpected_count and all(v > 2 for v in too_long.unexpected_sample)


def test_suite_parameters_come_from_the_parameters_file() -> None:
    params = {**PARAMETERS, "features": {"sequence_length": 7}, "scoring": {"deciles": 5}}
    assert suite_parameters(params) == {"sequence_length": 7, "deciles": 5}


def test_a_missing_suite_parameter_is_refused(make_warehouse: WarehouseFactory) -> None:
    path = make_warehouse(ml__customer_scores=customer_scores())
    with pytest.raises(ValueError, match="deciles"):
        validate(path, "ml.customer_scores", parameters={"sequence_length": SEQUENCE_LENGTH})


def test_a_missing_contract_column_fails_naming_it(make_warehouse: WarehouseFactory) -> None:
    features = customer_features().drop(columns=["brand_sequence"])
    path = make_warehouse()
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.register("frame", features)
    con.execute("create table marts.customer_features as select * from frame")
    con.close()
    outcome = validate(path, "marts.customer_features")
    schema = next(
        f for f in outcome.failures if f.expectation_type == "expect_table_columns_to_match_set"
    )
    assert schema.observed_value == {"missing": ["brand_sequence"]}
    # The sequence-length measure of the missing column fails alone, not the whole batch.
    broken = {f.column for f in outcome.failures}
    assert "age" not in broken and "brand_sequence_items" in broken


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
            suite_parameters(PARAMETERS),
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
