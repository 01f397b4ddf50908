"""Build the dbt marts at given sizes: full build, one new day incrementally, and the
same features computed the notebook's way in pandas on the same data.

    .venv/bin/python benchmarks/dbt_features.py                  # 1M and 10M order items
    .venv/bin/python benchmarks/dbt_features.py --sizes 100000   # a quick run

Every step is its own process tree (dbt runs as a subprocess of `nextbuy`), measured for
wall time and peak RSS; for dbt runs also dbt's own execution time ("Finished running ...
in N seconds"), which leaves out its fixed start-up and project parsing. The pandas way
runs with a time limit (--pandas-timeout); when it is hit, its time is reported as
infinite, and the limit bounds the speed-up from below.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _measure import machine, nextbuy, run  # noqa: E402

END = dt.date(2026, 10, 31)
PANDAS = f"""
import sys
sys.path.insert(0, {str(HERE.parent)!r})
import duckdb
from orchestration.parameters import load_parameters, target_brands
from tests.dbt_project import notebook_features as nb
con = duckdb.connect(sys.argv[1], read_only=True)
raw = nb.read_raw(con)
params = load_parameters()
n = int(params["features"]["sequence_length"])
examples = nb.training_examples(raw, target_brands(params), n)
features = nb.customer_features(raw, target_brands(params), n, __import__("datetime").date.fromisoformat(sys.argv[2]))
print(len(examples), len(features))
"""


# The feature models only: the scoring models need scores, which this benchmark does not make.
FEATURES = ("--exclude", "tag:scoring")


def bench(order_items: int, work: Path, pandas_timeout: float) -> dict[str, object]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    wh = str(work / "warehouse.duckdb")
    as_of = (END + dt.timedelta(days=1)).isoformat()
    result: dict[str, object] = {"order_items": order_items}

    def step(name: str, wall: float, rss: float, output: str) -> None:
        result[name] = {"seconds": round(wall, 1), "peak_rss_mib": round(rss)}
        if output.startswith("killed"):
            result[name]["outcome"] = output
        executed = re.findall(r"Finished running .* in .*\((\d+\.\d+)s\)", output)
        note = ""
        if executed:
            result[name]["dbt_execution_seconds"] = float(executed[-1])
            note = f" (dbt execution {executed[-1]} s)"
        print(f"  {name}: {wall:.1f} s{note}, peak {rss:,.0f} MiB", flush=True)

    nextbuy(
        "simulate", "--order-items", str(order_items), "--end", END.isoformat(), "--warehouse", wh
    )
    step(
        "dbt_full_build",
        *nextbuy(
            "dbt",
            "build",
            *FEATURES,
            "--full-refresh",
            "--vars",
            f"{{as_of: {as_of}}}",
            "--warehouse",
            wh,
        ),
    )
    step(
        "dbt_full_run",
        *nextbuy(
            "dbt",
            "run",
            *FEATURES,
            "--full-refresh",
            "--vars",
            f"{{as_of: {as_of}}}",
            "--warehouse",
            wh,
        ),
    )
    nextbuy("simulate", "--append-days", "1", "--warehouse", wh)
    next_as_of = (END + dt.timedelta(days=2)).isoformat()
    step(
        "dbt_one_day_run",
        *nextbuy("dbt", "run", *FEATURES, "--vars", f"{{as_of: {next_as_of}}}", "--warehouse", wh),
    )
    step(
        "dbt_full_run_same_data",
        *nextbuy(
            "dbt",
            "run",
            *FEATURES,
            "--full-refresh",
            "--vars",
            f"{{as_of: {next_as_of}}}",
            "--warehouse",
            wh,
        ),
    )
    if pandas_timeout > 0:
        step(
            "pandas_notebook",
            *run([sys.executable, "-c", PANDAS, wh, as_of], timeout=pandas_timeout, check=False),
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--pandas-timeout", type=float, default=1800, help="0 skips pandas")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        print(f"{size:,} order items ({machine()})", flush=True)
        work = HERE / ".work" / f"dbt_features_{size}"
        results.append(bench(size, work, args.pandas_timeout))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
