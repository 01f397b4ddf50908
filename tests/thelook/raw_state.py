"""What a refused load or demo must leave exactly as it was: every raw, meta and truth
table's row count and an order-independent checksum of its rows."""

from __future__ import annotations

from pathlib import Path

import duckdb

from thelook.schema import META_SCHEMA, RAW_SCHEMA
from thelook.simulator import TRUTH_SCHEMA


def raw_state(
    con: duckdb.DuckDBPyConnection,
    schemas: tuple[str, ...] = (RAW_SCHEMA, META_SCHEMA, TRUTH_SCHEMA),
) -> dict[str, tuple[int, int]]:
    """(rows, checksum) per table of ``schemas`` (the raw, meta and truth schemas)."""
    tables = con.execute(
        "select table_schema || '.' || table_name from information_schema.tables "
        "where table_type = 'BASE TABLE' and list_contains(?, table_schema) order by 1",
        [list(schemas)],
    ).fetchall()
    state = {}
    for (name,) in tables:
        rows, checksum = con.execute(
            f"select count(*), coalesce(sum(hash(t)::hugeint), 0) from {name} t"
        ).fetchall()[0]
        state[name] = (int(rows), int(checksum))
    return state


def raw_state_of(path: Path) -> dict[str, tuple[int, int]]:
    """`raw_state` of a warehouse file, opened read-only and closed again."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return raw_state(con)
    finally:
        con.close()


def google_warehouse(directory: Path) -> Path:
    """A warehouse file in `directory` holding the small Google-generator fixture."""
    from tests.conftest import FIXTURES
    from thelook.loader import load_export
    from thelook.warehouse import connect

    path = directory / "google.duckdb"
    con = connect(path)
    try:
        load_export(con, [FIXTURES / "thelook_google"])
    finally:
        con.close()
    return path
