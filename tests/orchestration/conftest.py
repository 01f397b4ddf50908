"""The small shop that test_cli, test_doctor and test_future_and_deletions each used to
simulate and build for themselves (a minute or more each): built once per session, and
copied by every test module that changes it."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestration.cli import main
from thelook.warehouse import connect

# An order_items day no shop reaches: test_future_and_deletions' quarantined item.
FUTURE_DAY = "29990611"


@dataclass(frozen=True)
class SmallShop:
    """A 300-customer shop simulated to 2024-03-31, with one order item dated 2999 loaded,
    after one `nextbuy features` (no --as-of: the date comes from the data)."""

    home: Path
    # The features run's output, and the working folder before and after it.
    output: str
    cwd_before: str
    cwd_after: str
    future_order: int

    def copy(self, folder: Path) -> Path:
        """A home of one's own to change: warehouse, dbt target, Dagster and MLflow stores
        (every path in them is relative to the home)."""
        home = folder / "home"
        shutil.copytree(self.home, home, ignore=shutil.ignore_patterns("nextbuy.lock"))
        return home


def _future_item(warehouse: Path, folder: Path) -> tuple[Path, int]:
    """One order_items row dated 2999 of a customer with orders, in a new order."""
    con = connect(warehouse, read_only=True)
    try:
        row = (
            con.execute(
                "select max(id) + 1000 as id, max(order_id) + 1000 as order_id, "
                "arg_max(user_id, created_at) as user_id, min(product_id) as product_id "
                "from raw.order_items"
            )
            .df()
            .iloc[0]
        )
    finally:
        con.close()
    path = folder / "order_items.csv"
    path.write_text(
        "id,order_id,user_id,product_id,inventory_item_id,status,created_at,shipped_at,"
        "delivered_at,returned_at,sale_price\n"
        f"{row.id},{row.order_id},{row.user_id},{row.product_id},{row.id},Complete,"
        "2999-06-11 10:00:00 UTC,,,,25.0\n"
    )
    return path, int(row.order_id)


@pytest.fixture(scope="session")
def small_shop(tmp_path_factory: pytest.TempPathFactory) -> SmallShop:
    """Built once; tests that change a home work on ``small_shop.copy(...)``."""
    root = tmp_path_factory.mktemp("small_shop")
    home = root / "home"
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXTBUY_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        simulated = runner.invoke(main, ["simulate", "--users", "300", "--end", "2024-03-31"])
        assert simulated.exit_code == 0, simulated.output
        csv, future_order = _future_item(home / "warehouse.duckdb", root)
        loaded = runner.invoke(main, ["load-thelook", str(csv)])
        assert loaded.exit_code == 0, loaded.output
        cwd_before = os.getcwd()
        built = runner.invoke(main, ["features"])
        cwd_after = os.getcwd()
        assert built.exit_code == 0, built.output
    return SmallShop(home, built.output, cwd_before, cwd_after, future_order)
