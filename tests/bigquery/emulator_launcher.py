"""Starts bqemulator (`python emulator_launcher.py start ...`, the arguments of its own CLI)
in its own environment, after mending three defects of its pinned version that the
project's SQL meets. Run by tests/bigquery/emulator.py with the emulator's interpreter;
it imports nothing of the project.

Defect 1: before translating a query to DuckDB, bqemulator rewrites bare decimal literals
(`3.25` -> `3.25e0`) outside string literals, but its scan for quotes does not skip SQL
comments. An apostrophe in a comment (`-- The customer's first item`, in several of the
project's models) makes it take what follows for the inside of a string and the next
string for SQL, so the timestamp literals it writes for INFORMATION_SCHEMA.PARTITIONS
become `'2026-12-03 13:04:50.138000e0 UTC'`, which DuckDB rejects. The mend hands that
rewrite the query without its comments (which carry no meaning for the emulator).

Defect 2: bqemulator answers INFORMATION_SCHEMA.PARTITIONS by writing the partitions into
the query as `(VALUES (...), ...) AS v(table_catalog, ...)`. When anything else in the
query makes it parse and re-print the SQL with SQLGlot, those column names are lost
(`Referenced column "table_name" not found`: stg_thelook__partitions as read by the
incremental models). The mend writes the same rows as `SELECT ... AS name UNION ALL ...`,
whose names survive.

Defect 3: DuckDB cannot create a table from a column list and a query at once, so
bqemulator rewrites `CREATE TABLE t (columns) AS SELECT ...` into a CTAS whose projections
are cast to the declared types, but only when the query is a bare SELECT: dbt-bigquery
writes the query of a model with an enforced contract (both marts) in parentheses,
`AS (SELECT ...)`, and DuckDB rejects the statement ("syntax error at or near AS"). The
mend lets the rewrite look inside the parentheses.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

# A quoted string or identifier (kept as it is), or a comment (dropped). BigQuery's
# strings escape with a backslash and may be triple-quoted (dbt's descriptions are); its
# `#` comments are not used by the project.
_TOKEN = re.compile(
    r"(?P<kept>'''.*?'''|" + '""".*?"""|'
    r"""'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"|`[^`]*`)"""
    r"|(?P<line>--[^\n]*)|(?P<block>/\*.*?\*/)",
    re.DOTALL,
)


def without_comments(sql: str) -> str:
    """``sql`` with its ``--`` and ``/* */`` comments blanked, quoted text untouched.

    >>> without_comments("select 1.5 -- the customer's\\nfrom t /* it's */ where s = '--x'")
    "select 1.5 \\nfrom t   where s = '--x'"
    """

    def keep_or_blank(match: re.Match[str]) -> str:
        return match.group("kept") or (" " if match.group("block") else "")

    return _TOKEN.sub(keep_or_blank, sql)


def _mend_decimal_literals() -> None:
    from bqemulator.sql import translator

    original: Callable[[str], str] = translator.rewrite_decimal_literals
    translator.rewrite_decimal_literals = lambda sql: original(without_comments(sql))


def _mend_partitions_view() -> None:
    from bqemulator.sql.rewriter import information_schema as view

    def partitions_as_selects(catalog: object, project_id: str, dataset_id: str) -> str:
        tables = catalog.list_tables(project_id, dataset_id)  # type: ignore[attr-defined]
        rows = [
            ", ".join(
                (
                    f"{view._sql_literal(p.table_catalog)} AS table_catalog",
                    f"{view._sql_literal(p.table_schema)} AS table_schema",
                    f"{view._sql_literal(p.table_name)} AS table_name",
                    f"{view._sql_literal(p.partition_id)} AS partition_id",
                    f"{int(p.total_rows)} AS total_rows",
                    f"{int(p.total_logical_bytes)} AS total_logical_bytes",
                    f"{view._ts_literal(int(p.last_modified_time.timestamp() * 1000))}"
                    " AS last_modified_time",
                    f"{view._sql_literal(p.storage_tier)} AS storage_tier",
                )
            )
            for t in sorted(tables, key=lambda t: t.table_id)
            if t.table_type in {"TABLE", "SNAPSHOT", "CLONE"}
            for p in catalog.list_partitions(project_id, dataset_id, t.table_id)  # type: ignore[attr-defined]
        ]
        if not rows:
            return view._empty_partitions_values_subquery()
        return "(" + " UNION ALL ".join(f"SELECT {row}" for row in rows) + ")"

    view._partitions_as_values = partitions_as_selects


def _mend_contract_ctas() -> None:
    from bqemulator.sql.rewriter import create_table_schema_ctas as ctas
    from sqlglot import exp

    original = ctas._first_select

    def first_select(body: exp.Expression | None) -> exp.Select | None:
        while isinstance(body, exp.Subquery):
            body = body.this
        return original(body)

    ctas._first_select = first_select


def main() -> None:
    _mend_decimal_literals()
    _mend_partitions_view()
    _mend_contract_ctas()
    from bqemulator.cli import main as bqemulator_main

    sys.argv[0] = "bqemulator"
    bqemulator_main()


if __name__ == "__main__":
    main()
