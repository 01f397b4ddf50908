"""The marts' row rules and contracts, which dbt checks (the GX suites check only what the
whole table shows: expectations/README.md).

Every rule gets a planted defect on a copy of a built warehouse, and one `dbt test` over
all of them must fail exactly the planted rules, each on its one row; a model whose SQL
breaks the contract must fail its build with dbt's contract error and leave the built mart
as it was.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import duckdb
import jinja2
import pytest
import yaml

from orchestration.dbt import DBT_PROJECT_DIR, dbt_env, dbt_executable, run_dbt
from orchestration.environment import current_environment
from orchestration.settings import load_parameters
from tests.dbt_project.conftest import AS_OF

SEQUENCE_LENGTH = load_parameters().features.sequence_length
MARTS_YAML = DBT_PROJECT_DIR / "models" / "marts" / "_marts__models.yml"
# One planted defect a line: the mart, a name, what it sets on one row ({other} is a second
# row's key; {too_long} a sequence of {past_cap} items, one past the cap) and the dbt
# tests it must fail, `*` standing for the mart. The rows picked hold at least two prior
# items, fewer than the cap, and a last order at least a day before as_of.
PLANTED = """
training_examples | null_example_customer | customer_id = null | not_null_*_customer_id
training_examples | duplicate_example_order | order_id = {other} | unique_*_order_id
training_examples | label_not_0_or_1 | label = 2 | accepted_values_*_label__False__0__1
training_examples | more_orders_than_items | prior_orders = prior_items + 1 | at_least_*_prior_items__prior_orders
training_examples | first_order_after_last | days_since_first_order = days_since_last_order - 0.5 | at_least_*_days_since_first_order__days_since_last_order
training_examples | age_out_of_range | age = 130 | between_*_age__120__0
training_examples | negative_price | last_item_price = -1 | non_negative_*_last_item_price
training_examples | share_above_one | prior_target_brand_share = 1.5 | share_*_prior_target_brand_share
training_examples | sequences_past_the_cap | prior_items = {past_cap}, brand_sequence = '{too_long}', department_sequence = '{too_long}', category_sequence = '{too_long}' | capped_sequence_*_brand_sequence capped_sequence_*_department_sequence capped_sequence_*_category_sequence
training_examples | separator_in_a_brand | brand_sequence = brand_sequence || ';Semi' | aligned_sequences_*_brand_sequence__department_sequence__category_sequence__prior_items
training_examples | fanned_out_join | brand_sequence = brand_sequence || ';Hanes', department_sequence = department_sequence || ';Men', category_sequence = category_sequence || ';Jeans' | aligned_sequences_*_brand_sequence__department_sequence__category_sequence__prior_items
training_examples | null_sequence | category_sequence = null | not_null_*_category_sequence
customer_features | null_customer | customer_id = null | not_null_*_customer_id
customer_features | duplicate_customer | customer_id = {other} | unique_*_customer_id
customer_features | two_as_of_dates | as_of = as_of - interval 1 day | single_value_*_as_of
customer_features | unknown_gender | gender = 'X' | accepted_values_*_gender__F__M
customer_features | empty_sequences | brand_sequence = '', department_sequence = '', category_sequence = '' | capped_sequence_*_brand_sequence capped_sequence_*_department_sequence capped_sequence_*_category_sequence
customer_features | sequence_missing_an_item | department_sequence = substr(department_sequence, strpos(department_sequence, ';') + 1) | aligned_sequences_*_brand_sequence__department_sequence__category_sequence__prior_items
customer_features | null_history_feature | days_since_last_order = null | not_null_*_days_since_last_order
customer_features | no_prior_orders | prior_orders = 0 | positive_*_prior_orders
"""


@dataclass(frozen=True)
class Defect:
    mart: str
    name: str
    assignments: str
    failing_tests: tuple[str, ...]


DEFECTS = [
    Defect(mart, name, assignments, tuple(t.replace("*", mart) for t in tests.split()))
    for mart, name, assignments, tests in (
        (part.strip() for part in line.split(" | ")) for line in PLANTED.strip().splitlines()
    )
]
KEYS = {"training_examples": "order_id", "customer_features": "customer_id"}
PAST_CAP = SEQUENCE_LENGTH + 1


def _plant(con: duckdb.DuckDBPyConnection) -> None:
    for table, key in KEYS.items():
        defects = [defect for defect in DEFECTS if defect.mart == table]
        rows = [
            row[0]
            for row in con.execute(
                f"""select {key} from marts.{table}
                    where prior_items between 2 and {SEQUENCE_LENGTH - 1}
                      and days_since_last_order >= 1
                    order by {key} limit {2 * len(defects)}"""
            ).fetchall()
        ]
        assert len(rows) == 2 * len(defects), f"too few rows of {table} to plant in"
        for defect, row, other in zip(defects, rows[::2], rows[1::2], strict=True):
            assignments = defect.assignments.format(
                other=other, past_cap=PAST_CAP, too_long=";".join(["Hanes"] * PAST_CAP)
            )
            update = f"update marts.{table} set {assignments} where {key} = {row}"
            assert con.execute(update).fetchone() == (1,), defect.name


@pytest.fixture(scope="module")
def failed_tests(simulated: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """The marts' failing dbt tests, with their failing row counts, after every defect of
    DEFECTS was planted in a copy of the built warehouse (one `dbt test` for all)."""
    warehouse = tmp_path_factory.mktemp("planted") / "warehouse.duckdb"
    shutil.copy(simulated, warehouse)
    con = duckdb.connect(str(warehouse))
    try:
        _plant(con)
    finally:
        con.close()
    result = run_dbt(
        ["test", "--select", "training_examples customer_features",
         "--exclude", "test_type:singular"],
        warehouse=warehouse, vars={"as_of": AS_OF.isoformat()}, check=False,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout[-3000:]
    target = Path(dbt_env(current_environment(), warehouse)["DBT_TARGET_PATH"])
    results = json.loads((target / "run_results.json").read_text())["results"]
    tests = [r for r in results if r["unique_id"].startswith("test.")]
    assert {r["status"] for r in tests} == {"pass", "fail"}, result.stdout[-3000:]
    return {r["unique_id"].split(".")[2]: r["failures"] for r in tests if r["status"] == "fail"}


@pytest.mark.parametrize("defect", DEFECTS, ids=lambda d: f"{d.mart}-{d.name}")
def test_a_planted_defect_fails_its_dbt_tests(failed_tests: dict[str, int], defect: Defect) -> None:
    assert set(defect.failing_tests) <= set(failed_tests)


def test_only_the_planted_rules_fail_each_on_its_rows(failed_tests: dict[str, int]) -> None:
    # A test named by two defects (two ways to break the sequences) fails on two rows.
    planted = Counter(name for defect in DEFECTS for name in defect.failing_tests)
    assert failed_tests == dict(planted)


def _render(data_type: str, adapter: str) -> str:
    """A contract data_type as dbt renders it for a target of this adapter type."""
    return jinja2.Environment().from_string(data_type).render(target={"type": adapter})


# What BigQuery computes where DuckDB computes these (the same SQL, dispatched), and the
# INT64 aliases BigQuery accepts in a cast.
BIGQUERY_TWINS = {
    "BIGINT": "INT64",
    "INTEGER": "INT64",
    "DOUBLE": "FLOAT64",
    "VARCHAR": "STRING",
    "TIMESTAMP": "TIMESTAMP",
}
BIGQUERY_INT64_ALIASES = {"INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT"}


def test_contract_types_are_the_built_types_on_duckdb_and_bigquery(simulated: Path) -> None:
    from dbt.adapters.bigquery.column import BigQueryColumn

    con = duckdb.connect(str(simulated), read_only=True)
    for model in yaml.safe_load(MARTS_YAML.read_text())["models"]:
        assert model["config"]["contract"] == {"enforced": True}, model["name"]
        built = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'marts' and table_name = ? order by ordinal_position",
                [model["name"]],
            ).fetchall()
        )
        declared = {column["name"]: column["data_type"] for column in model["columns"]}
        assert list(declared) == list(built), model["name"]
        for name, data_type in declared.items():
            on_duckdb = duckdb.sql(f"select cast(null as {_render(data_type, 'duckdb')})")
            assert str(on_duckdb.types[0]) == built[name], (model["name"], name)
            on_bigquery = BigQueryColumn.translate_type(_render(data_type, "bigquery")).upper()
            on_bigquery = "INT64" if on_bigquery in BIGQUERY_INT64_ALIASES else on_bigquery
            assert on_bigquery == BIGQUERY_TWINS[built[name]], (model["name"], name)
    con.close()


def test_a_contract_violation_fails_the_build_and_keeps_the_marts(
    simulated: Path, tmp_path: Path
) -> None:
    # The shared feature macro loses a column and changes another's type, as a careless
    # edit would: both marts must refuse to build, naming both columns.
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    macro = project / "macros" / "purchase_features.sql"
    sql = macro.read_text()
    assert "        users.city,\n" in sql and "users.age," in sql
    macro.write_text(
        sql.replace("        users.city,\n", "").replace(
            "users.age,", "cast(users.age as varchar) as age,"
        )
    )
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(simulated, warehouse)
    env = dbt_env(current_environment(), warehouse, as_of=AS_OF.isoformat())
    env.update(DBT_TARGET_PATH=str(tmp_path / "target"), DBT_LOG_PATH=str(tmp_path / "logs"))
    result = subprocess.run(
        [dbt_executable(), "run", "--select", "training_examples", "customer_features",
         "--full-refresh", "--project-dir", str(project), "--profiles-dir", str(project),
         "--vars", json.dumps(load_parameters().dbt_vars())],
        cwd=project, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("This model has an enforced contract that failed") == 2, output[-4000:]
    # dbt's table: column_name | definition_type | contract_type | mismatch_reason
    for row in (
        r"age \| VARCHAR \| BIGINT \| data type mismatch",
        r"city \| \| VARCHAR \| missing",
    ):
        assert len(re.findall(r"\| " + row, re.sub(r" +", " ", output))) == 2, row

    con = duckdb.connect(str(warehouse), read_only=True)
    for mart in ("training_examples", "customer_features"):
        columns = {row[0]: row[1] for row in con.execute(f"describe marts.{mart}").fetchall()}
        assert columns["age"] == "BIGINT" and "city" in columns, mart
    con.close()
