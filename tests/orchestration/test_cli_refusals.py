"""Refusals of the `nextbuy` command line (issue 11): one line naming the file, option,
setting or path at fault, no traceback, and raw (and the simulator's truth) exactly as
before."""

from __future__ import annotations

import datetime as dt
import errno
import os
import pathlib
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from orchestration.cli import main
from orchestration.demo import prepare_warehouse
from orchestration.environment import current_environment
from orchestration.settings import load_parameters
from tests.conftest import FIXTURES
from tests.thelook.raw_state import google_warehouse, raw_state_of
from thelook.schema import TABLES

GOOGLE = FIXTURES / "thelook_google"
USERS_HEADER = ",".join(c.name for c in TABLES["users"].columns if c.required) + "\n"


@pytest.fixture(scope="module")
def google_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return google_warehouse(tmp_path_factory.mktemp("google"))


@pytest.fixture
def warehouse_file(google_file: Path, tmp_path: Path) -> Path:
    """A copy of a warehouse holding the small Google-generator export."""
    return Path(shutil.copy(google_file, tmp_path / "loaded.duckdb"))


def _refused(result: Result, exit_code: int, *named: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for part in named:
        assert part in result.output, result.output


def _folder(path: Path, files: dict[str, str]) -> Path:
    path.mkdir()
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def test_replace_with_a_header_only_file_is_refused(tmp_path: Path, warehouse_file: Path) -> None:
    export = _folder(tmp_path / "x", {"users.csv": USERS_HEADER})
    before = raw_state_of(warehouse_file)
    for flags in (["--replace"], []):
        result = CliRunner().invoke(
            main, ["load-thelook", *flags, str(export), "--warehouse", str(warehouse_file)]
        )
        _refused(result, 1, "load failed, raw unchanged", f"{export / 'users.csv'}: no data rows")
        assert raw_state_of(warehouse_file) == before
    allowed = CliRunner().invoke(
        main,
        [
            "load-thelook",
            "--replace",
            "--allow-empty",
            str(export),
            "--warehouse",
            str(warehouse_file),
        ],
    )
    assert allowed.exit_code == 0, allowed.output
    emptied = raw_state_of(warehouse_file)
    assert emptied["raw.users"][0] == emptied["raw.orders"][0] == 0


def test_orders_without_items_load_with_a_warning(tmp_path: Path) -> None:
    export = _folder(
        tmp_path / "x",
        {"orders.csv": "order_id,user_id,status,created_at\n7,1,Complete,2024-01-01\n"},
    )
    result = CliRunner().invoke(main, ["load-thelook", str(export)])
    assert result.exit_code == 0, result.output
    assert any(
        line.startswith("warning: order_items.csv not in this load: the orders it adds have no")
        for line in result.output.splitlines()
    ), result.output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--users", "0"], "'--users': 0 is not in the range x>=1"),
        (["--users", "-5"], "'--users': -5 is not in the range x>=1"),
        (["--order-items", "0"], "'--order-items': 0 is not in the range x>=1"),
        (["--end", "2000-01-01"], "'--end': end (2000-01-01) is before start"),
        (["--seed", "-1"], "'--seed': Input should be greater than or equal to 0"),
    ],
)
def test_bad_simulate_options_are_named(args: list[str], named: str, warehouse_file: Path) -> None:
    before = raw_state_of(warehouse_file)
    result = CliRunner().invoke(main, ["simulate", *args, "--warehouse", str(warehouse_file)])
    _refused(result, 2, f"Invalid value for {named}")
    assert raw_state_of(warehouse_file) == before


COMMANDS = {
    "warehouse": ["warehouse"],
    "load-thelook": ["load-thelook", str(GOOGLE)],
    "simulate": ["simulate", "--users", "5"],
    "export-thelook": ["export-thelook", "EXPORT"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unknown_environment_is_named(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXTBUY_ENV", "bogus")
    args = [a.replace("EXPORT", str(tmp_path / "out")) for a in COMMANDS[command]]
    result = CliRunner().invoke(main, args)
    _refused(result, 2, "NEXTBUY_ENV must be 'local' or 'production', not 'bogus'")
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_warehouse_that_is_not_a_duckdb_file_is_named(command: str, tmp_path: Path) -> None:
    text = tmp_path / "notes.duckdb"
    text.write_text("not a database\n")
    args = [a.replace("EXPORT", str(tmp_path / "out")) for a in COMMANDS[command]]
    result = CliRunner().invoke(main, [*args, "--warehouse", str(text)])
    _refused(result, 2, str(text), "not a valid DuckDB database file", "--warehouse")
    assert text.read_text() == "not a database\n"


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_an_unwritable_home_is_named(
    code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"

    def unwritable(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code), str(self))

    monkeypatch.setattr(pathlib.Path, "mkdir", unwritable)
    result = CliRunner().invoke(main, ["simulate", "--users", "5"])
    _refused(result, 2, f"{home}: {os.strerror(code)} (under NEXTBUY_HOME, {home})")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_home_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    monkeypatch.setenv("NEXTBUY_HOME", str(locked / "home"))
    result = CliRunner().invoke(main, ["simulate", "--users", "5"])
    _refused(result, 2, str(locked / "home"), "NEXTBUY_HOME")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_named_and_changes_nothing(warehouse_file: Path) -> None:
    """DuckDB's write-ahead log on /dev/full: every commit fails with ENOSPC, as on a
    full disk."""
    before = raw_state_of(warehouse_file)
    wal = warehouse_file.with_name(warehouse_file.name + ".wal")
    wal.symlink_to("/dev/full")
    try:
        result = CliRunner().invoke(
            main, ["load-thelook", str(GOOGLE / "users.csv.gz"), "--warehouse", str(warehouse_file)]
        )
    finally:
        wal.unlink()
    _refused(result, 2, str(wal), "No space left on device", "--warehouse")
    assert raw_state_of(warehouse_file) == before


DEMO_EXPORTS = {
    "ragged users.csv": (
        {"users.csv": USERS_HEADER + "1,2,3\n"},
        "load failed, raw unchanged: ",
        "users.csv: line 2: Expected Number of Columns: 7 Found: 3",
    ),
    "header-only users.csv": (
        {"users.csv": USERS_HEADER},
        "load failed, raw unchanged: ",
        "users.csv: no data rows",
    ),
    "no order_items": (
        {"distribution_centers.csv": "id,name\n1,Memphis TN\n"},
        "the export holds no order items; raw unchanged",
        "",
    ),
}


def test_a_failed_demo_load_keeps_the_simulation(tmp_path: Path, google_file: Path) -> None:
    """`demo --thelook` checks the export before it drops the simulator's truth tables."""
    runner = CliRunner()
    simulated = runner.invoke(main, ["simulate", "--users", "30", "--end", "2024-03-31"])
    assert simulated.exit_code == 0, simulated.output
    path = current_environment().warehouse_path
    before = raw_state_of(path)
    assert before["truth.customers"][0] == 30
    for case, (files, *named) in DEMO_EXPORTS.items():
        export = _folder(tmp_path / case.replace(" ", "_"), files)
        _refused(runner.invoke(main, ["demo", "--thelook", str(export)]), 1, *named)
        assert raw_state_of(path) == before, case
    appended = runner.invoke(main, ["simulate", "--append-days", "1"])
    assert appended.exit_code == 0, appended.output

    # A good export replaces raw and drops the truth tables, which describe other customers.
    prepared = prepare_warehouse(path, load_parameters(), GOOGLE)
    after = raw_state_of(path)
    assert not any(name.startswith("truth.") for name in after)
    raw = {name: state for name, state in after.items() if name.startswith("raw.")}
    assert raw == {n: s for n, s in raw_state_of(google_file).items() if n.startswith("raw.")}
    assert prepared.as_of == dt.date(2026, 11, 26)  # the day after the fixture's last item
