"""Simulate, export and load thelook data at given sizes; wall time and peak memory per step.

    .venv/bin/python benchmarks/simulate_load.py                 # 1M and 10M order items
    .venv/bin/python benchmarks/simulate_load.py --sizes 100000  # a quick run

Each step runs as its own `nextbuy` process, so its peak RSS is that step's alone. Work
files go to benchmarks/.work/ (git-ignored) and are removed afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _measure import machine, nextbuy  # noqa: E402


def count(warehouse: Path, table: str) -> int:
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    row = con.execute(f"select count(*) from raw.{table}").fetchone()
    con.close()
    assert row is not None
    return int(row[0])


def bench(order_items: int, work: Path) -> dict[str, object]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    simulated, loaded, export = work / "simulated.duckdb", work / "loaded.duckdb", work / "export"
    result: dict[str, object] = {"target_order_items": order_items}
    steps = {
        "simulate": ["simulate", "--order-items", str(order_items), "--warehouse", str(simulated)],
        "append_1_day": ["simulate", "--append-days", "1", "--warehouse", str(simulated)],
        "export": ["export-thelook", str(export), "--warehouse", str(simulated)],
        "load": ["load-thelook", str(export), "--warehouse", str(loaded)],
    }
    for name, args in steps.items():
        wall, rss, _ = nextbuy(*args)
        result[name] = {"seconds": round(wall, 1), "peak_rss_mib": round(rss)}
        print(f"  {name}: {wall:.1f} s, peak {rss:,.0f} MiB", flush=True)
    result["order_items"] = count(simulated, "order_items")
    result["users"] = count(simulated, "users")
    assert count(loaded, "order_items") == result["order_items"], "load lost rows"
    result["export_mib"] = round(sum(f.stat().st_size for f in export.iterdir()) / 2**20, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        print(f"{size:,} order items ({machine()})", flush=True)
        work = HERE / ".work" / f"simulate_load_{size}"
        results.append(bench(size, work))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
