"""The export loader on real-format fixtures cut from Google's generator and BigQuery's export."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.conftest import FIXTURES
from thelook.loader import LoadError, export_raw, load_export
from thelook.schema import PARTITIONS_TABLE, TABLES

GOOGLE = FIXTURES / "thelook_google"
BIGQUERY = FIXTURES / "thelook_bigquery_export"


def _rows(path: Path) -> int:
    with gzip.open(path, "rt") as f:
        return sum(1 for _ in f) - 1


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", newline="") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def _snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[object, ...]]]:
    """Everything a load may change, for proving that a failed one changed nothing."""
    snap = {
        t.name: con.execute(f"select * from {t.qualified_name} order by all").fetchall()
        for t in TABLES.values()
    }
    snap["partitions"] = con.execute(f"select * from {PARTITIONS_TABLE} order by all").fetchall()
    return snap


def _items_header() -> str:
    return ",".join(TABLES["order_items"].column_names) + "\n"


def _item(id_: int, created_at: str, order_id: int = 1, price: str = "9.5") -> str:
    return f'{id_},{order_id},1,"15050",{id_},"Shipped","{created_at}","","","","{price}"\n'


@pytest.fixture
def loaded(warehouse: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    load_export(warehouse, [GOOGLE])
    return warehouse


def test_google_generator_format_loads_every_row(loaded: duckdb.DuckDBPyConnection) -> None:
    for name in ("users", "orders", "order_items", "products", "distribution_centers"):
        count = loaded.execute(f"select count(*) from raw.{name}").fetchone()
        assert count == (_rows(GOOGLE / f"{name}.csv.gz"),), name
    # Quoted numbers are typed, zone-less timestamps are UTC, empty strings are NULL.
    row = loaded.execute(
        "select product_id, created_at, shipped_at, delivered_at, sale_price "
        "from raw.order_items where id = 1"
    ).fetchone()
    assert row == (
        15050,
        dt.datetime(2025, 12, 27, 5, 39, 17),
        dt.datetime(2025, 12, 27, 13, 1, 42),
        None,
        pytest.approx(24.979999542236328),
    )
    types = dict(
        loaded.execute("select column_name, column_type from (describe raw.order_items)").fetchall()
    )
    assert types["product_id"] == "BIGINT" and types["created_at"] == "TIMESTAMP"


def test_partitions_table_tracks_each_day(loaded: duckdb.DuckDBPyConnection) -> None:
    expected = loaded.execute(
        "select strftime(created_at, '%Y%m%d'), count(*) from raw.order_items group by 1 order by 1"
    ).fetchall()
    recorded = loaded.execute(
        f"select partition_id, total_rows from {PARTITIONS_TABLE} "
        "where table_name = 'order_items' order by 1"
    ).fetchall()
    assert recorded == expected
    unpartitioned = loaded.execute(
        f"select table_name, total_rows from {PARTITIONS_TABLE} where partition_id is null order by 1"
    ).fetchall()
    assert ("users", 200) in unpartitioned


def test_bigquery_export_quirks_survive(warehouse: duckdb.DuckDBPyConnection) -> None:
    result = load_export(warehouse, [BIGQUERY])
    assert {t.table for t in result.tables} == {
        "users",
        "order_items",
        "products",
        "distribution_centers",
        "events",
        "inventory_items",
    }
    # `... UTC` timestamps keep their instant; shipped before created stays as it arrived.
    row = warehouse.execute(
        "select created_at, shipped_at from raw.order_items where id = 123673"
    ).fetchone()
    assert row == (dt.datetime(2024, 6, 23, 23, 41, 55), dt.datetime(2024, 6, 22, 11, 7))
    # The string 'null' is data in raw; staging decides what it means.
    nulls = warehouse.execute("select count(*) from raw.users where city = 'null'").fetchone()
    assert nulls is not None and nulls[0] > 0
    geom = warehouse.execute("select user_geom from raw.users where id = 17702").fetchone()
    assert geom == ("POINT(-72.87094866 -8.065346116)",)


def test_timestamp_forms_and_future_dates(
    tmp_path: Path, warehouse: duckdb.DuckDBPyConnection
) -> None:
    future = (dt.datetime.now() + dt.timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
    _write(
        tmp_path / "x" / "order_items.csv",
        _items_header()
        + _item(1, "2024-06-23 23:41:55.000000 UTC")
        + _item(2, "2024-06-23T23:41:55Z")
        + _item(3, "2024-06-24 01:41:55+02:00")
        + _item(4, future),
    )
    load_export(warehouse, [tmp_path / "x"])
    got = warehouse.execute("select id, created_at from raw.order_items order by id").fetchall()
    instant = dt.datetime(2024, 6, 23, 23, 41, 55)
    assert [g[1] for g in got[:3]] == [instant, instant, instant]
    assert got[3][1] > dt.datetime.now()


def test_absent_optional_and_extra_columns(
    tmp_path: Path, warehouse: duckdb.DuckDBPyConnection
) -> None:
    _write(
        tmp_path / "x" / "distribution_centers.csv",
        "id,name,loading_docks\n1,Memphis TN,4\n",
    )
    result = load_export(warehouse, [tmp_path / "x"])
    (t,) = result.tables
    assert t.ignored_columns == ("loading_docks",)
    assert set(t.absent_columns) == {"latitude", "longitude", "distribution_center_geom"}
    assert warehouse.execute("select * from raw.distribution_centers").fetchall() == [
        (1, "Memphis TN", None, None, None)
    ]


def test_whole_numbers_written_as_floats_load(
    tmp_path: Path, warehouse: duckdb.DuckDBPyConnection
) -> None:
    _write(tmp_path / "x" / "distribution_centers.csv", 'id,name\n"3.0",Houston TX\n')
    load_export(warehouse, [tmp_path / "x"])
    assert warehouse.execute("select id from raw.distribution_centers").fetchall() == [(3,)]


def test_sharded_export_loads_as_one_table(
    tmp_path: Path, warehouse: duckdb.DuckDBPyConnection
) -> None:
    _write(
        tmp_path / "x" / "order_items-000000000000.csv.gz",
        _items_header() + _item(1, "2024-01-01 10:00:00"),
    )
    _write(
        tmp_path / "x" / "order_items-000000000001.csv.gz",
        _items_header() + _item(2, "2024-01-02 10:00:00"),
    )
    (t,) = load_export(warehouse, [tmp_path / "x"]).tables
    assert t.rows == 2 and t.partitions == ("20240101", "20240102")


def test_reload_replaces_never_duplicates(loaded: duckdb.DuckDBPyConnection) -> None:
    before = _snapshot(loaded)
    load_export(loaded, [GOOGLE])
    after = _snapshot(loaded)
    assert after.pop("partitions") != [] and before.pop("partitions") != []
    assert after == before


def test_reloading_a_partition_replaces_its_rows(
    tmp_path: Path, warehouse: duckdb.DuckDBPyConnection
) -> None:
    day1 = _items_header() + _item(1, "2024-01-01 10:00:00") + _item(2, "2024-01-01 11:00:00")
    day2 = _items_header() + _item(3, "2024-01-02 10:00:00")
    load_export(warehouse, [_write(tmp_path / "a" / "order_items.csv", day1)])
    load_export(warehouse, [_write(tmp_path / "b" / "order_items.csv", day2)])
    # A corrected day-1 delivery: item 2 was withdrawn, item 1 repriced.
    fix = _items_header() + _item(1, "2024-01-01 10:00:00", price="7.0")
    load_export(warehouse, [_write(tmp_path / "c" / "order_items.csv", fix)])
    assert warehouse.execute(
        "select id, sale_price from raw.order_items order by id"
    ).fetchall() == [
        (1, 7.0),
        (3, 9.5),
    ]
    assert warehouse.execute(
        f"select partition_id, total_rows from {PARTITIONS_TABLE} "
        "where table_name = 'order_items' order by 1"
    ).fetchall() == [("20240101", 1), ("20240102", 1)]


def test_replace_all_makes_the_export_the_whole_dataset(
    loaded: duckdb.DuckDBPyConnection,
) -> None:
    # BIGQUERY has no orders.csv: emptying raw.orders must be asked for.
    load_export(loaded, [BIGQUERY], replace_all=True, allow_empty=True)
    assert loaded.execute("select count(*) from raw.orders").fetchone() == (0,)
    assert loaded.execute("select count(*) from raw.users").fetchone() == (60,)


BAD_INPUTS = {
    "missing required column": (
        "order_items.csv",
        "id,order_id,user_id,status,created_at,sale_price\n1,1,1,Shipped,2024-01-01,1.0\n",
        r"order_items\.csv: missing required column 'product_id'",
    ),
    "unparsable timestamp": (
        "order_items.csv",
        _items_header() + _item(1, "2024-01-01 10:00:00") + _item(2, "yesterday"),
        r"order_items\.csv: row 2, column 'created_at': 'yesterday' is not a valid TIMESTAMP",
    ),
    "unparsable number": (
        "order_items.csv",
        _items_header() + _item(1, "2024-01-01 10:00:00", price="9,5"),
        r"row 1, column 'sale_price': '9,5' is not a valid FLOAT64",
    ),
    "fractional id": (
        "distribution_centers.csv",
        "id,name\n1.5,Memphis TN\n",
        r"row 1, column 'id': '1.5' is not a valid INT64",
    ),
    "duplicate primary key": (
        "order_items.csv",
        _items_header()
        + _item(7, "2024-01-01 10:00:00")
        + _item(8, "2024-01-01 10:00:00")
        + _item(7, "2024-01-03 10:00:00"),
        r"order_items: duplicate primary key id = 7 \(order_items\.csv row 1, order_items\.csv row 3\)",
    ),
    "empty primary key": (
        "distribution_centers.csv",
        "id,name\n1,Memphis TN\n,Houston TX\n",
        r"row 2, column 'id': primary key is empty",
    ),
    "ragged row": (
        "distribution_centers.csv",
        "id,name\n1,Memphis TN\n2,Chicago IL,extra\n",
        r"distribution_centers\.csv: line 3: Expected Number of Columns: 2 Found: 3",
    ),
    "empty file": ("users.csv", "", r"users\.csv: empty file"),
    "unknown table": ("customers.csv", "id\n1\n", r"customers\.csv: unknown table 'customers'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_named_and_loses_nothing(
    case: str, tmp_path: Path, loaded: duckdb.DuckDBPyConnection
) -> None:
    name, text, message = BAD_INPUTS[case]
    export = tmp_path / "export"
    shutil.copytree(GOOGLE, export)  # good files beside the bad one must not land either
    (export / "order_items.csv.gz").unlink()
    (export / "distribution_centers.csv.gz").unlink()
    _write(export / name, text)
    before = _snapshot(loaded)
    with pytest.raises(LoadError, match=message):
        load_export(loaded, [export])
    assert _snapshot(loaded) == before


def test_key_living_in_another_partition_is_refused(
    tmp_path: Path, loaded: duckdb.DuckDBPyConnection
) -> None:
    before = _snapshot(loaded)
    moved = _items_header() + _item(1, "2019-01-01 00:00:00")  # item 1 lives in 20251227
    with pytest.raises(LoadError, match=r"id values already present .*1 \(in partition 20251227\)"):
        load_export(loaded, [_write(tmp_path / "x" / "order_items.csv", moved)])
    assert _snapshot(loaded) == before


def test_export_round_trips(tmp_path: Path, loaded: duckdb.DuckDBPyConnection) -> None:
    export_raw(loaded, tmp_path / "out")
    from thelook.warehouse import connect

    copy = connect(tmp_path / "copy.duckdb")
    load_export(copy, [tmp_path / "out"])
    original, copied = _snapshot(loaded), _snapshot(copy)
    original.pop("partitions"), copied.pop("partitions")
    assert copied == original


def test_header_only_file_asked_for_is_an_empty_delivery(
    tmp_path: Path, loaded: duckdb.DuckDBPyConnection
) -> None:
    before = _snapshot(loaded)
    header_only = _write(tmp_path / "x" / "order_items.csv", _items_header())
    (t,) = load_export(loaded, [header_only], allow_empty=True).tables
    assert (t.rows, t.partitions) == (0, ())
    after = _snapshot(loaded)
    assert after.pop("partitions") == before.pop("partitions") and after == before
