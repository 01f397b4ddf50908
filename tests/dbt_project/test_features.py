"""The marts against an independent pandas computation of DESIGN.md's data contract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd

from orchestration.dbt import run_dbt
from orchestration.settings import load_parameters
from tests.dbt_project import notebook_features as nb
from tests.dbt_project.conftest import AS_OF, build, table

RawReader = Callable[[Path], dict[str, pd.DataFrame]]
SEQUENCE_LENGTH = load_parameters().features.sequence_length
TARGET_BRANDS = list(load_parameters().campaign.target_brands)
FEATURES = [
    "gender", "country", "city", "traffic_source", "age", "prior_orders", "prior_items",
    "days_since_last_order", "days_since_first_order", "days_since_signup", "avg_item_price",
    "last_item_price", "prior_target_brand_share", "prior_target_items", "prior_target_brands",
    "brand_sequence", "department_sequence",
    "category_sequence",
]  # fmt: skip


def assert_same(built: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    expected = expected.sort_values(keys).reset_index(drop=True)
    assert len(built) == len(expected) > 0
    for column in expected.columns:
        got, want = built[column], expected[column]
        if pd.api.types.is_float_dtype(want) or pd.api.types.is_float_dtype(got):
            pd.testing.assert_series_equal(
                got.astype(float), want.astype(float), check_names=False, rtol=1e-9, atol=1e-6
            )
        else:
            assert got.astype(object).where(got.notna(), None).tolist() == (
                want.astype(object).where(want.notna(), None).tolist()
            ), column


def test_column_contract(simulated: Path) -> None:
    examples = table(simulated, "marts.training_examples")
    features = table(simulated, "marts.customer_features")
    assert list(examples.columns) == ["customer_id", "order_id", "as_of", "label", *FEATURES]
    assert list(features.columns) == ["customer_id", "as_of", *FEATURES, *INSTANTS]


# customer_features' last columns: what its days_since columns count from (not features).
INSTANTS = ["last_order_at", "first_order_at", "signed_up_at"]


def test_training_examples_match_the_pandas_definition(
    simulated: Path, raw_frames: RawReader
) -> None:
    raw = raw_frames(simulated)
    expected = nb.training_examples(raw, TARGET_BRANDS, SEQUENCE_LENGTH)
    built = table(simulated, "marts.training_examples")
    assert_same(built, expected[built.columns], ["customer_id", "order_id"])
    assert 0.02 < built["label"].mean() < 0.6


def test_customer_features_match_the_pandas_definition(
    simulated: Path, raw_frames: RawReader
) -> None:
    raw = raw_frames(simulated)
    expected = nb.customer_features(raw, TARGET_BRANDS, SEQUENCE_LENGTH, AS_OF)
    built = table(simulated, "marts.customer_features")
    assert_same(built, expected[built.columns], ["customer_id"])
    # Nothing at or after as_of: orders simulated after it exist but are not seen.
    assert (built["days_since_last_order"] > 0).all()


def test_sequences_are_capped_and_oldest_first(simulated: Path) -> None:
    con = duckdb.connect(str(simulated), read_only=True)
    longest = con.execute(
        "select max(len(string_split(brand_sequence, ';'))) from marts.training_examples"
    ).fetchall()[0][0]
    assert longest <= SEQUENCE_LENGTH
    # The last element is the last prior item's brand.
    mismatches = con.execute(
        """select count(*) from marts.training_examples e
           join intermediate.int_purchase_items i
             on i.customer_id = e.customer_id and i.item_number = e.prior_items
           where string_split(e.brand_sequence, ';')[-1] <> i.brand"""
    ).fetchall()[0][0]
    con.close()
    assert mismatches == 0


def test_the_notebook_formulation_is_one_example_per_customer(
    simulated: Path, raw_frames: RawReader, tmp_path: Path
) -> None:
    import shutil

    warehouse = tmp_path / "notebook.duckdb"
    shutil.copy(simulated, warehouse)
    build(warehouse, "--select", "training_examples", "--full-refresh", examples="last_order")
    built = table(warehouse, "marts.training_examples")
    assert built["customer_id"].is_unique
    expected = nb.training_examples(
        raw_frames(warehouse),
        TARGET_BRANDS,
        SEQUENCE_LENGTH,
        last_order_only=True,
    )
    assert_same(built, expected[built.columns], ["customer_id", "order_id"])


def test_leakage_test_catches_a_planted_leak(simulated: Path, tmp_path: Path) -> None:
    import shutil

    warehouse = tmp_path / "leaky.duckdb"
    shutil.copy(simulated, warehouse)
    clean = run_dbt(["test", "--select", "assert_features_see_only_earlier_purchases"],
                    warehouse=warehouse, check=False)  # fmt: skip
    assert clean.returncode == 0, clean.stdout[-3000:]
    # The classic off-by-one: an example's features taken through its own purchase k.
    con = duckdb.connect(str(warehouse))
    con.execute(
        """update marts.training_examples as e set
             prior_orders = h.order_number,
             prior_items = h.items_through,
             brand_sequence = h.brand_sequence
           from intermediate.int_customer_history as h
           where h.customer_id = e.customer_id and h.order_id = e.order_id
             and e.order_id = (select min(order_id) from marts.training_examples)"""
    )
    con.close()
    leaky = run_dbt(["test", "--select", "assert_features_see_only_earlier_purchases"],
                    warehouse=warehouse, check=False)  # fmt: skip
    assert leaky.returncode != 0
    assert "assert_features_see_only_earlier_purchases" in leaky.stdout and "FAIL 1" in leaky.stdout


def test_running_without_the_parameters_vars_names_the_missing_var(simulated: Path) -> None:
    import subprocess

    from orchestration.dbt import DBT_PROJECT_DIR, dbt_env, dbt_executable
    from orchestration.environment import current_environment

    result = subprocess.run(
        [dbt_executable(), "compile", "--select", "int_orders", "--profiles-dir", str(DBT_PROJECT_DIR)],
        cwd=DBT_PROJECT_DIR, env=dbt_env(current_environment(), simulated),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "var 'target_brands' is not set" in result.stdout + result.stderr


def test_an_unknown_formulation_is_refused(simulated: Path) -> None:
    result = run_dbt(["compile", "--select", "training_examples"], warehouse=simulated,
                     vars={"examples": "first_order"}, check=False)  # fmt: skip
    assert result.returncode != 0 and "must be every_order or last_order" in result.stdout


def test_docs_site_describes_every_model_and_column(simulated: Path) -> None:
    import json

    from orchestration.dbt import dbt_env
    from orchestration.environment import current_environment

    run_dbt(["docs", "generate"], warehouse=simulated, vars={"as_of": AS_OF.isoformat()})
    target = Path(dbt_env(current_environment(), simulated)["DBT_TARGET_PATH"])
    assert (target / "index.html").exists()
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    models = {k: n for k, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    assert len(models) >= 10
    for key, node in models.items():
        assert node["description"].strip(), f"{node['name']} has no description"
        if "scoring" in node["tags"]:
            # Not built here (they need the pipeline's scores): tests/orchestration builds them.
            assert key not in catalog["nodes"] and node["columns"], node["name"]
            continue
        built = {c.lower() for c in catalog["nodes"][key]["columns"]}
        documented = {c for c, d in node["columns"].items() if d["description"].strip()}
        assert built <= documented, f"{node['name']}: undocumented {sorted(built - documented)}"
    exposures = {e["name"] for e in manifest["exposures"].values()}
    assert exposures == {"next_order_brand_model", "brand_offer_campaign"}
