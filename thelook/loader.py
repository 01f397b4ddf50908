"""Loads a thelook_ecommerce export (CSV or gzipped CSV) into the warehouse's raw schema.

Both formats met in practice load: the generator's own (every field quoted, empty strings
for missing timestamps, zone-less timestamps) and BigQuery's export (`... 23:41:55.000000
UTC` timestamps, the string `null` in text columns, geography columns, sharded files such
as `order_items-000000000001.csv.gz`). Rows are kept as they arrived: text is not trimmed,
`null` strings stay, odd timestamps stay; dbt staging cleans. What the loader refuses is
what cannot be stored faithfully: an unknown table, a missing required column, a value
that does not parse as its BigQuery type, a duplicate or missing primary key, an empty
file, a file without data rows. The error names the file, column and row, and nothing is
written: every file of a load goes into raw in one transaction.

Emptiness is refused unless asked for (`allow_empty`): a header-only file is far more often
a failed export than a table that really became empty, and a whole-dataset load that would
leave a table empty that holds rows now would silently throw those rows away. An empty
shard beside non-empty shards of the same table is accepted, as BigQuery's sharded
exports write them.

What a load leaves unjoined (orders without their items, items without their orders,
products or users) is a warning, not a refusal (thelook.load_warnings says why).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from thelook.field_types import TEXT_TYPES, ident, quote, typed_sql, unparsable_sql
from thelook.load_errors import LoadError, csv_error, read_header
from thelook.load_warnings import unjoined_warnings
from thelook.pause_points import pause_point
from thelook.schema import TABLES, Column, Table
from thelook.warehouse import (
    TableWrite,
    WarehouseWriteError,
    apply_raw_writes,
    clear_raw,
    count_rows,
    first_row,
    transaction,
)

# `<table>.csv[.gz]`, or a shard of a BigQuery wildcard export: `<table>-000000000000.csv.gz`.
_FILE_NAME = re.compile(r"^(?P<table>[a-z_]+?)(?:[-_]\d+)?\.csv(?:\.gz)?$", re.IGNORECASE)


@dataclass(frozen=True)
class TableLoad:
    table: str
    files: tuple[Path, ...]
    rows: int
    partitions: tuple[str, ...]
    ignored_columns: tuple[str, ...] = ()
    absent_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadResult:
    tables: list[TableLoad] = field(default_factory=list)
    # What the load leaves unjoined, one sentence each (see thelook.load_warnings).
    warnings: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def discover(paths: Iterable[Path]) -> dict[str, list[Path]]:
    """Map each raw table to its files; a directory contributes every CSV in it."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file() and _is_csv(p.name)))
        elif path.is_file():
            files.append(path)
        else:
            raise LoadError(f"{path}: no such file or directory")
    by_table: dict[str, list[Path]] = {}
    for f in files:
        match = _FILE_NAME.match(f.name)
        table = match.group("table").lower() if match else None
        if table not in TABLES:
            raise LoadError(
                f"{f}: unknown table {table or f.name!r}; expected one of "
                f"{', '.join(sorted(TABLES))} (as <table>.csv or <table>.csv.gz)"
            )
        by_table.setdefault(table, []).append(f)
    if not by_table:
        raise LoadError(f"no thelook CSV files in {', '.join(str(p) for p in paths)}")
    return by_table


@dataclass(frozen=True)
class StagedExport:
    """An export read, checked and typed into temp tables shaped like raw, not yet written."""

    paths: tuple[Path, ...]
    files: dict[str, list[Path]]
    # raw table name -> the temp relation holding its rows
    relations: dict[str, str]
    notes: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]

    @property
    def source(self) -> str:
        return f"load-thelook {' '.join(map(str, self.paths))}"


@contextmanager
def stage_export(
    con: duckdb.DuckDBPyConnection, paths: Iterable[Path | str], *, allow_empty: bool = False
) -> Iterator[StagedExport]:
    """Stage every thelook table found in `paths`; the temp tables go when the block ends.

    Nothing in raw changes: a caller writes the staged relations in a transaction of its
    own (`load_export`, or the demo, which drops the simulator's truth in the same one).
    """
    paths = [Path(p) for p in paths]
    by_table = discover(paths)
    staged: dict[str, str] = {}
    notes: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    try:
        for name, files in by_table.items():
            staged[name], ignored, absent = _stage(con, TABLES[name], files, allow_empty)
            notes[name] = (ignored, absent)
        yield StagedExport(tuple(paths), by_table, staged, notes)
    finally:
        for relation in staged.values():
            con.execute(f"drop table if exists {relation}")


def load_export(
    con: duckdb.DuckDBPyConnection,
    paths: Iterable[Path | str],
    *,
    replace_all: bool = False,
    allow_empty: bool = False,
    source: str | None = None,
) -> LoadResult:
    """Load every thelook table found in `paths` into raw, all or nothing.

    By default a load merges: it replaces the day partitions of order_items it holds and
    the rows of other tables whose primary keys it holds. `replace_all` makes it the
    whole dataset instead. `allow_empty` accepts header-only files and a `replace_all`
    that leaves tables empty which hold rows now.
    """
    with stage_export(con, paths, allow_empty=allow_empty) as staged:
        if replace_all and not allow_empty:
            _refuse_emptying(con, staged)
        try:
            with transaction(con):
                if replace_all:
                    clear_raw(con)
                writes = apply_raw_writes(con, staged.relations, source=source or staged.source)
                pause_point("load-writing")
        except WarehouseWriteError as e:
            raise LoadError(str(e)) from e
        warnings = unjoined_warnings(con, staged.relations)
    loads = [_table_load(w, staged.files[w.table], *staged.notes[w.table]) for w in writes]
    return LoadResult(loads, warnings)


def _refuse_emptying(con: duckdb.DuckDBPyConnection, staged: StagedExport) -> None:
    """Refuse a whole-dataset load without a table that holds rows now (the staged
    tables are not empty: `_stage` refused that already)."""
    for table in TABLES.values():
        held = count_rows(con, table.qualified_name)
        if held and table.name not in staged.relations:
            raise LoadError(
                f"replacing raw would leave raw.{table.name} empty: it holds {held:,} rows "
                f"and this load has no {table.name}.csv; allow_empty (--allow-empty) empties it"
            )


def _table_load(
    write: TableWrite, files: list[Path], ignored: tuple[str, ...], absent: tuple[str, ...]
) -> TableLoad:
    return TableLoad(write.table, tuple(files), write.rows, write.partitions, ignored, absent)


def _is_csv(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(".csv") or lower.endswith(".csv.gz")


def _stage(
    con: duckdb.DuckDBPyConnection, table: Table, files: list[Path], allow_empty: bool
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """Read, check and type one table's files into a temp table shaped like raw."""
    header = None
    for f in files:
        cols = read_header(f)
        dupes = sorted({c for c in cols if cols.count(c) > 1})
        if dupes:
            raise LoadError(f"{f}: column {dupes[0]!r} appears more than once in the header")
        missing = [c.name for c in table.columns if c.required and c.name not in cols]
        if missing:
            raise LoadError(
                f"{f}: missing required column {missing[0]!r} of table {table.name} "
                f"(required: {', '.join(c.name for c in table.columns if c.required)})"
            )
        if header is not None and cols != header:
            raise LoadError(
                f"{f}: header differs from {files[0].name}, another shard of {table.name}"
            )
        header = cols
    assert header is not None
    present = [c for c in table.columns if c.name in header]
    ignored = tuple(c for c in header if c not in table.column_names)
    absent = tuple(c.name for c in table.columns if c.name not in header)

    source = _csv_source(files, header)
    typed = {c.name: typed_sql(c, ident(c.name)) for c in present}
    bad = [unparsable_sql(c, typed[c.name]) for c in present if c.bq_type not in TEXT_TYPES]
    relation = f"_load_{table.name}"
    select = ", ".join(
        f"{typed[c.name]} as {c.name}" if c.name in typed else f"null::{c.duckdb_type} as {c.name}"
        for c in table.columns
    )
    # One streaming pass types every value and flags rows with one that does not parse;
    # row numbers are only worked out (by reading again) when there is an error to name.
    try:
        con.execute(
            f"create or replace temp table {relation} as "
            f"select {select}, {' or '.join(bad) or 'false'} as _unparsable from {source}"
        )
    except duckdb.Error as e:
        raise LoadError(csv_error(e, files)) from e
    if not allow_empty and not count_rows(con, relation):
        raise LoadError(f"{', '.join(map(str, files))}: no data rows")
    if count_rows(con, f"(select 1 from {relation} where _unparsable)"):
        _raise_unparsable(con, table, present, typed, source)
    con.execute(f"alter table {relation} drop column _unparsable")
    _check_keys(con, table, relation, source)
    return relation, ignored, absent


def _csv_source(files: list[Path], header: list[str]) -> str:
    """read_csv over a table's files, with the header already read taken as given.

    DuckDB's sniffer must not second-guess the header, so that a ragged row is an error
    rather than a silently different table.
    """
    file_list = ", ".join(quote(str(f)) for f in files)
    columns = "{" + ", ".join(f"{quote(c)}: 'VARCHAR'" for c in header) + "}"
    return (
        f"read_csv([{file_list}], header = true, auto_detect = false, columns = {columns}, "
        f"delim = ',', quote = '\"', escape = '\"', filename = true, strict_mode = true)"
    )


def _numbered(source: str) -> str:
    """The source with each row's file and 1-based data row number, for error messages."""
    return (
        f"(select filename as _file, row_number() over (partition by filename) as _row, "
        f"* exclude (filename) from {source})"
    )


def _raise_unparsable(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    present: list[Column],
    typed: dict[str, str],
    source: str,
) -> None:
    for column in present:
        if column.bq_type in TEXT_TYPES:
            continue
        cond = unparsable_sql(column, typed[column.name])
        row = first_row(
            con,
            f"select _file, _row, {ident(column.name)}, count(*) over () "
            f"from {_numbered(source)} where {cond} order by _file, _row limit 1",
        )
        if row:
            raise LoadError(
                f"{row[0]}: row {row[1]}, column {column.name!r}: {row[2]!r} is not a valid "
                f"{column.bq_type} ({row[3]} such value(s) in table {table.name})"
            )
    raise AssertionError("a value was flagged unparsable but none was found again")


def _check_keys(con: duckdb.DuckDBPyConnection, table: Table, relation: str, source: str) -> None:
    key = table.primary_key
    if count_rows(con, f"(select 1 from {relation} where {key} is null)"):
        row = first_row(
            con,
            f"select _file, _row from {_numbered(source)} "
            f"where lower(trim(coalesce({ident(key)}, ''))) in ('', 'null') "
            f"order by _file, _row limit 1",
        )
        assert row is not None
        raise LoadError(f"{row[0]}: row {row[1]}, column {key!r}: primary key is empty")
    dupe = first_row(
        con,
        f"select {key} from {relation} group by {key} having count(*) > 1 order by {key} limit 1",
    )
    if dupe:
        typed_key = typed_sql(table.column(key), ident(key))
        rows = con.execute(
            f"select _file, _row from {_numbered(source)} where {typed_key} = ? "
            f"order by _file, _row",
            [dupe[0]],
        ).fetchall()
        where = ", ".join(f"{Path(f).name} row {r}" for f, r in rows)
        raise LoadError(f"{table.name}: duplicate primary key {key} = {dupe[0]} ({where})")


def export_raw(con: duckdb.DuckDBPyConnection, directory: Path | str) -> dict[str, Path]:
    """Write every non-empty raw table as `<table>.csv.gz`, in a form `load_export` reads back."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for table in TABLES.values():
        if not count_rows(con, table.qualified_name):
            continue
        path = directory / f"{table.name}.csv.gz"
        con.execute(
            f"copy (select * from {table.qualified_name} order by {table.primary_key}) "
            f"to {quote(str(path))} (header, compression gzip)"
        )
        written[table.name] = path
    return written
