"""What the export loader refuses, what it warns about, and that a refusal leaves raw
exactly as it was (issue 11: empty files, emptied tables, unjoined tables, DuckDB's
messages cut down to the file, line and cause)."""

from __future__ import annotations

import gzip
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from tests.conftest import FIXTURES
from tests.thelook.raw_state import google_warehouse, raw_state
from thelook.loader import LoadError, load_export
from thelook.schema import TABLES
from thelook.warehouse import connect

GOOGLE = FIXTURES / "thelook_google"
BIGQUERY = FIXTURES / "thelook_bigquery_export"
USERS_HEADER = (",".join(c.name for c in TABLES["users"].columns if c.required) + "\n").encode()
CENTERS = "id,name\n" + "".join(f"{i},Center {i}\n" for i in range(1, 6))


def _gz(text: bytes) -> bytes:
    return gzip.compress(text, mtime=0)


def _corrupt_stream(text: bytes) -> bytes:
    """A gzip file whose header is fine and whose deflate stream is not."""
    packed = bytearray(_gz(text))
    packed[12:40] = b"\xff" * 28
    return bytes(packed)


# name -> (files of the export, replace, expected message)
REFUSED: dict[str, tuple[dict[str, bytes], bool, str]] = {
    "header-only file, merge": (
        {"users.csv": USERS_HEADER},
        False,
        r"users\.csv: no data rows$",
    ),
    "header-only file, replace": (
        {"users.csv": USERS_HEADER},
        True,
        r"users\.csv: no data rows$",
    ),
    "every shard header-only": (
        {"users-000000000000.csv": USERS_HEADER, "users-000000000001.csv": USERS_HEADER},
        False,
        r"users-000000000000\.csv, \S+users-000000000001\.csv: no data rows$",
    ),
    "replace leaving tables empty": (
        {"distribution_centers.csv": CENTERS.encode()},
        True,
        r"replacing raw would leave raw\.(\w+) empty: it holds [\d,]+ rows and this load has no "
        r"\1\.csv; allow_empty \(--allow-empty\) empties it",
    ),
    "semicolon-delimited": (
        {"distribution_centers.csv": b"id;name\n1;Memphis TN\n"},
        False,
        r"distribution_centers\.csv: the header is one column holding ';' — nextbuy reads "
        r"comma-separated files",
    ),
    "tab-delimited": (
        {"distribution_centers.csv": b"id\tname\n1\tMemphis TN\n"},
        False,
        r"distribution_centers\.csv: the header is one column holding tabs",
    ),
    "blank first line": (
        {"distribution_centers.csv": b"\n" + CENTERS.encode()},
        False,
        r"distribution_centers\.csv: the first line is blank; the header must be the first line",
    ),
    "corrupt gzip": (
        {"distribution_centers.csv.gz": _corrupt_stream(CENTERS.encode())},
        False,
        r"distribution_centers\.csv\.gz: not a readable gzip file: .*invalid",
    ),
    "truncated gzip": (
        {
            "distribution_centers.csv.gz": _gz(
                (
                    "id,name\n" + "".join(f"{i},C{i * 7919 % 10007}\n" for i in range(1, 20000))
                ).encode()
            )[:30000]
        },
        False,
        r"distribution_centers\.csv\.gz: not readable as CSV: Unexpected end of GZIP stream$",
    ),
    "invalid UTF-8 in a row": (
        {"distribution_centers.csv": CENTERS.encode() + b"6,Caf\xe9\n"},
        False,
        r"distribution_centers\.csv: line 7: Invalid unicode \(byte sequence mismatch\) "
        r"detected\. This file is not utf-8 encoded\. \(the line: '6,Caf",
    ),
    "invalid UTF-8 in the header": (
        {"distribution_centers.csv": b"id,n\xe9me\n1,x\n"},
        False,
        r"distribution_centers\.csv: line 1 is not UTF-8 text \(invalid continuation byte",
    ),
    "ragged row": (
        {"distribution_centers.csv": b"id,name\n1,Memphis TN\n2,Chicago IL,extra\n"},
        False,
        r"distribution_centers\.csv: line 3: Expected Number of Columns: 2 Found: 3 "
        r"\(the line: '2,Chicago IL,extra'\)$",
    ),
    "unterminated quote": (
        {"distribution_centers.csv": b'id,name\n1,"Memphis TN\n2,x\n'},
        False,
        r"distribution_centers\.csv: line 2: Value with unterminated quote found\.",
    ),
    "over-long line": (
        {"distribution_centers.csv": b"id,name\n1," + b"x" * 2_100_000 + b"\n"},
        False,
        r"distribution_centers\.csv: line 2: Maximum line size of 2000000 bytes exceeded\. "
        r"Actual Size:\d+ bytes\. \(the line: '1,x{78}\.\.\.'\)$",
    ),
}


@pytest.fixture(scope="module")
def google_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return google_warehouse(tmp_path_factory.mktemp("google"))


@pytest.fixture
def loaded(google_file: Path, tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A copy of a warehouse holding the Google-generator fixture, open."""
    con = connect(shutil.copy(google_file, tmp_path / "loaded.duckdb"))
    yield con
    con.close()


def _export(directory: Path, files: dict[str, bytes]) -> Path:
    directory.mkdir()
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return directory


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_loads_name_the_file_and_change_nothing(
    case: str, tmp_path: Path, loaded: duckdb.DuckDBPyConnection
) -> None:
    files, replace, message = REFUSED[case]
    export = _export(tmp_path / "export", files)
    before = raw_state(loaded)
    with pytest.raises(LoadError, match=message) as refused:
        load_export(loaded, [export], replace_all=replace)
    assert "Possible" not in str(refused.value) and "\n" not in str(refused.value)
    assert raw_state(loaded) == before


def test_allow_empty_accepts_what_is_otherwise_refused(
    tmp_path: Path, loaded: duckdb.DuckDBPyConnection
) -> None:
    files = {"users.csv": USERS_HEADER, "distribution_centers.csv": CENTERS.encode()}
    export = _export(tmp_path / "export", files)
    load_export(loaded, [export], replace_all=True, allow_empty=True)
    state = raw_state(loaded)
    assert state["raw.users"][0] == state["raw.orders"][0] == 0
    assert state["raw.distribution_centers"][0] == 5


def test_an_empty_shard_beside_others_loads(
    tmp_path: Path, loaded: duckdb.DuckDBPyConnection
) -> None:
    export = _export(
        tmp_path / "export",
        {
            "distribution_centers-000000000000.csv": CENTERS.encode(),
            "distribution_centers-000000000001.csv": b"id,name\n",
        },
    )
    (table,) = load_export(loaded, [export]).tables
    assert table.rows == 5


def _orders_only(tmp_path: Path) -> list[Path]:
    rows = "order_id,user_id,status,created_at\n900001,1,Complete,2024-01-01 10:00:00\n"
    return [_export(tmp_path / "orders", {"orders.csv": rows.encode()})]


WARNED: dict[str, tuple[Callable[[Path], list[Path]], str]] = {
    "orders without order_items": (
        _orders_only,
        r"^order_items\.csv not in this load: the orders it adds have no items, so they add no "
        r"purchases and no training examples \(1 of its 1 orders are not in raw\.order_items\)$",
    ),
    "a BigQuery export without orders.csv": (
        lambda _: [BIGQUERY],
        r"^orders\.csv not in this load: the orders of its items have no orders row; each such "
        r"order's time is taken from its earliest item's created_at \([\d,]+ of its [\d,]+ orders",
    ),
}


@pytest.mark.parametrize("case", sorted(WARNED))
def test_missing_related_tables_are_warned_about(
    case: str, tmp_path: Path, warehouse: duckdb.DuckDBPyConnection
) -> None:
    make_paths, message = WARNED[case]
    result = load_export(warehouse, make_paths(tmp_path))
    assert any(re.search(message, w) for w in result.warnings), result.warnings


def test_no_warning_when_raw_already_holds_the_related_rows(
    loaded: duckdb.DuckDBPyConnection,
) -> None:
    result = load_export(loaded, [GOOGLE / "order_items.csv.gz"])
    assert result.warnings == ()
