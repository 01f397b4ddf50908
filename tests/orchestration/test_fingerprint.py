"""A changed data-defining setting reaches the incremental marts (orchestration/fingerprint.py).

One small simulated shop, two `nextbuy features` runs: the first with parameters.yaml,
the second with a copy whose target brands differ. The second must rebuild every
customer's labels (an incremental build would keep the old ones, since no raw partition
changed) and say which setting changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner, Result

from orchestration.cli import main
from orchestration.fingerprint import current_fingerprint, rebuild_notice, stored_fingerprint
from orchestration.settings import load_parameters
from thelook.warehouse import connect

# Three of the default brands and one no shop sells: labels change, and the label-rate
# band of the expectation suites still holds on this small shop.
NEW_BRANDS = ["NoSuchBrandXYZ", "Allegra K", "Calvin Klein", "Carhartt"]


@dataclass
class Runs:
    home: Path
    changed_parameters: Path
    first: Result
    second: Result
    labels_before: pd.DataFrame
    labels_after: pd.DataFrame


def _labels(warehouse: Path) -> pd.DataFrame:
    con = connect(warehouse, read_only=True)
    try:
        return con.execute(
            "select customer_id, order_id, label from marts.training_examples order by all"
        ).df()
    finally:
        con.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("fingerprint")
    home = root / "home"
    changed = root / "changed.yaml"
    params = load_parameters().model_dump(mode="json")
    params["campaign"]["target_brands"] = NEW_BRANDS
    changed.write_text(yaml.safe_dump(params))
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXTBUY_HOME", str(home))
        simulated = runner.invoke(main, ["simulate", "--users", "400", "--end", "2024-03-31"])
        assert simulated.exit_code == 0, simulated.output
        first = runner.invoke(main, ["features", "--as-of", "2024-04-01"])
        assert first.exit_code == 0, first.output
        before = _labels(home / "warehouse.duckdb")
        mp.setenv("NEXTBUY_PARAMETERS", str(changed))
        second = runner.invoke(main, ["features", "--as-of", "2024-04-01"])
        assert second.exit_code == 0, second.output
    return Runs(home, changed, first, second, before, _labels(home / "warehouse.duckdb"))


def test_a_first_build_records_the_fingerprint_without_a_notice(runs: Runs) -> None:
    assert "full refresh" not in runs.first.output
    # The second run recorded its own, with the changed brands.
    con = connect(runs.home / "warehouse.duckdb", read_only=True)
    try:
        stored = stored_fingerprint(con)
    finally:
        con.close()
    assert stored is not None and stored.settings["target_brands"] == NEW_BRANDS


def test_changed_target_brands_rebuild_every_label_and_say_so(runs: Runs) -> None:
    default = ", ".join(load_parameters().campaign.target_brands)
    notice = (
        f"target_brands changed ([{default}] → [{', '.join(NEW_BRANDS)}]): "
        "rebuilding the incremental marts from all partitions (full refresh)"
    )
    assert notice in runs.second.output
    # The labels a full build computes: any non-cancelled item of order k of a new brand
    # (from the staging views, which read raw as it is now).
    placeholders = ", ".join("?" for _ in NEW_BRANDS)
    con = connect(runs.home / "warehouse.duckdb", read_only=True)
    try:
        expected = con.execute(
            f"""select examples.customer_id, examples.order_id,
                      coalesce(max(not items.is_cancelled and products.brand in ({placeholders})), false)::int
                          as label
               from marts.training_examples as examples
               left join staging.stg_thelook__order_items as items using (order_id)
               left join staging.stg_thelook__products as products using (product_id)
               group by all order by all""",
            NEW_BRANDS,
        ).df()
    finally:
        con.close()
    after = runs.labels_after.astype({"label": int})
    pd.testing.assert_frame_equal(after, expected, check_dtype=False)
    assert not runs.labels_before["label"].astype(int).equals(after["label"])
    assert "label rate" in runs.second.output


def test_unchanged_settings_need_no_rebuild(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = runs.home / "warehouse.duckdb"
    monkeypatch.setenv("NEXTBUY_PARAMETERS", str(runs.changed_parameters))
    assert rebuild_notice(warehouse, current_fingerprint(load_parameters())) is None
    # Back to parameters.yaml's brands: a change again, named the other way round.
    monkeypatch.delenv("NEXTBUY_PARAMETERS")
    notice = rebuild_notice(warehouse, current_fingerprint(load_parameters()))
    assert notice is not None and f"target_brands changed ([{', '.join(NEW_BRANDS)}] →" in notice
