"""Build the dbt marts at given sizes: full build, one new day incrementally, and the
same features computed the notebook's way in pandas on the same data.

    .venv/bin/python benchmarks/dbt_features.py                  # 1M and 10M order items
    .venv/bin/python benchmarks/dbt_features.py --sizes 100000   # a quick run

Every step is its own process tree (dbt runs as a subprocess of `nextbuy`), measured for
wall time and peak RSS; for dbt runs also dbt's own execution time ("Finished running ...
in N seconds"), which leaves out its fixed start-up and project parsing, and the warehouse
time: the sum of the durations dbt logs for every SQL statement it ran, i.e. the work the
warehouse did, without dbt's own bookkeeping between statements. The one-day incremental
run and the full run it is compared with are each repeated (--repeat) from the same
saved warehouse, and their medians compared. The pandas way runs with a time limit
(--pandas-timeout); when it is hit, its time is reported as infinite, and the limit
bounds the speed-up from below.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _measure import machine, nextbuy, run  # noqa: E402

END = dt.date(2026, 10, 31)
PANDAS = f"""
import sys
sys.path.insert(0, {str(HERE.parent)!r})
import duckdb
from orchestration.settings import load_parameters
from tests.dbt_project import notebook_features as nb
con = duckdb.connect(sys.argv[1], read_only=True)
raw = nb.read_raw(con)
params = load_parameters()
n = params.features.sequence_length
examples = nb.training_examples(raw, list(params.campaign.target_brands), n)
features = nb.customer_features(raw, list(params.campaign.target_brands), n, __import__("datetime").date.fromisoformat(sys.argv[2]))
print(len(examples), len(features))
"""


# The feature models only: the scoring models need scores, which this benchmark does not make.
FEATURES = ("--exclude", "tag:scoring")


def warehouse_seconds(log: Path) -> float:
    """Seconds the warehouse spent on the statements of dbt's last invocation in `log`."""
    last = log.read_text().rsplit("=" * 30, 1)[-1]
    return sum(float(s) for s in re.findall(r"SQL status: .* in (\d+\.\d+) seconds", last))


def bench(order_items: int, work: Path, pandas_timeout: float, repeat: int) -> dict[str, object]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    wh = str(work / "warehouse.duckdb")
    # dagster-dbt, which runs every dbt command, writes dbt.log beside the artefacts.
    log = work / "dbt" / "target" / "dbt.log"
    as_of = (END + dt.timedelta(days=1)).isoformat()
    result: dict[str, object] = {"order_items": order_items}

    def measure(wall: float, rss: float, output: str) -> dict[str, float]:
        figures = {"seconds": round(wall, 2), "peak_rss_mib": round(rss)}
        executed = re.findall(r"Finished running .* in .*\((\d+\.\d+)s\)", output)
        if executed:
            figures["dbt_execution_seconds"] = float(executed[-1])
            figures["warehouse_seconds"] = round(warehouse_seconds(log), 2)
        return figures

    def show(name: str, figures: dict[str, object]) -> None:
        detail = ""
        if "dbt_execution_seconds" in figures:
            detail = (
                f" (dbt execution {figures['dbt_execution_seconds']:.2f} s,"
                f" warehouse {figures['warehouse_seconds']:.2f} s)"
            )
        print(
            f"  {name}: {figures['seconds']:.2f} s{detail}, peak {figures['peak_rss_mib']:,.0f} MiB"
        )

    def step(name: str, wall: float, rss: float, output: str) -> None:
        figures: dict[str, object] = dict(measure(wall, rss, output))
        if output.startswith("killed"):
            figures["outcome"] = output
        result[name] = figures
        show(name, figures)

    def compared(saved: Path, steps: dict[str, Callable[[], tuple[float, float, str]]]) -> None:
        """Each step `repeat` times from the saved warehouse, the steps taking turns (so a
        machine that slows down or speeds up weighs on both alike); the median of each
        figure per step. The copy is flushed to disk before a step, so that writing it
        back is not measured."""
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in steps}
        for _ in range(repeat):
            for name, run_step in steps.items():
                shutil.copyfile(saved, wh)
                os.sync()
                runs[name].append(measure(*run_step()))
        for name, measured in runs.items():
            figures: dict[str, object] = {
                key: statistics.median(r[key] for r in measured) for key in measured[0]
            }
            figures["runs"] = measured
            result[name] = figures
            show(f"{name} (median of {repeat})", figures)

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
    saved = work / "after_one_day.duckdb"
    shutil.copyfile(wh, saved)
    next_as_of = (END + dt.timedelta(days=2)).isoformat()
    one_day_run = ["run", *FEATURES, "--vars", f"{{as_of: {next_as_of}}}", "--warehouse", wh]
    compared(
        saved,
        {
            "dbt_one_day_run": lambda: nextbuy("dbt", *one_day_run),
            "dbt_full_run_same_data": lambda: nextbuy("dbt", *one_day_run, "--full-refresh"),
        },
    )
    one_day, full = result["dbt_one_day_run"], result["dbt_full_run_same_data"]
    assert isinstance(one_day, dict) and isinstance(full, dict)
    result["one_day_share_of_full"] = {
        key: round(one_day[key] / full[key], 3)
        for key in ("seconds", "dbt_execution_seconds", "warehouse_seconds")
    }
    print(f"  one new day as a share of a full run: {result['one_day_share_of_full']}")
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
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs of the one-day and the full run compared"
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        print(f"{size:,} order items ({machine()})", flush=True)
        work = HERE / ".work" / f"dbt_features_{size}"
        results.append(bench(size, work, args.pandas_timeout, args.repeat))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
