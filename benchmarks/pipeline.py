"""The whole pipeline at given shop sizes: what `make run` costs after setup, how long
training takes, how fast scoring is, and the peak memory.

    .venv/bin/python benchmarks/pipeline.py                      # the default shop and 1M customers
    .venv/bin/python benchmarks/pipeline.py --users 20000        # a quick run
    .venv/bin/python benchmarks/pipeline.py --make-run           # also `make run` itself

Per size, in a fresh NEXTBUY_HOME: `nextbuy simulate --users N` (behavioural, the rest of
the simulation settings from parameters.yaml), then `nextbuy pipeline --full-refresh`,
measured as one process tree (wall time, peak RSS: dbt runs as a child and is folded in).
Step times come from the Dagster run's own records (the instance under NEXTBUY_HOME):
feature_models (dbt build and tests), the GX checks, candidate_model (split, fit, evaluate,
log), champion_model (the gate) and customer_scores. CatBoost's fit time and the scoring
throughput (read, score and write customer_features, per second) are the assets' own
metadata. `--make-run` times `make run` in this checkout with a fresh NEXTBUY_HOME (setup
already done: the venv stamp is current), which is `nextbuy demo` on the default shop.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _measure import machine, nextbuy, run  # noqa: E402

END = dt.date(2026, 10, 31)


def _step_seconds(home: Path) -> tuple[dict[str, float], dict[str, Any]]:
    """Seconds per step of the newest run in this home's Dagster instance, and the
    materialisation metadata that the benchmark reports."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        (record,) = instance.get_run_records(limit=1)
        run_id = record.dagster_run.run_id
        steps = {
            s.step_key: s.end_time - s.start_time
            for s in instance.get_run_step_stats(run_id)
            if s.end_time and s.start_time
        }
        metadata: dict[str, Any] = {}
        for key in (dg.AssetKey("candidate_model"), dg.AssetKey(["ml", "customer_scores"])):
            event = instance.get_latest_materialization_event(key)
            assert event is not None and event.asset_materialization is not None
            for name, value in event.asset_materialization.metadata.items():
                metadata[f"{key.to_user_string()}.{name}"] = value.value
    return steps, metadata


def bench(users: int, work: Path) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ["NEXTBUY_HOME"] = str(work)
    simulate_wall, simulate_peak, _ = nextbuy("simulate", "--users", str(users), "--end", str(END))
    as_of = (END + dt.timedelta(days=1)).isoformat()
    wall, peak, out = nextbuy("pipeline", "--as-of", as_of, "--full-refresh")
    report = json.loads(out.strip().splitlines()[-1])
    steps, metadata = _step_seconds(work)
    checks = sum(v for k, v in steps.items() if k.startswith("gx_") or "gx_" in k)
    return {
        "users": users,
        "simulate_seconds": round(simulate_wall, 1),
        "simulate_peak_mib": round(simulate_peak),
        "pipeline_seconds": round(wall, 1),
        "pipeline_peak_mib": round(peak),
        "dbt_build_seconds": round(steps.get("feature_models", float("nan")), 1),
        "gx_checks_seconds": round(checks, 1),
        "candidate_model_seconds": round(steps.get("candidate_model", float("nan")), 1),
        "catboost_fit_seconds": metadata.get("candidate_model.fit_seconds"),
        "train_examples": metadata.get("candidate_model.train_examples"),
        "gate_seconds": round(steps.get("champion_model", float("nan")), 1),
        "scoring_seconds": metadata.get("ml/customer_scores.seconds"),
        "customers_scored": metadata.get("ml/customer_scores.dagster/row_count"),
        "customers_per_second": metadata.get("ml/customer_scores.customers_per_second"),
        "auc": report["auc"],
        "best_baseline_auc": report["best_baseline_auc"],
        "oracle_auc": report["oracle_auc"],
        "promoted": report["promoted"],
        "steps": {k: round(v, 1) for k, v in sorted(steps.items())},
    }


def make_run(work: Path) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    os.environ["NEXTBUY_HOME"] = str(work)
    wall, peak, _ = run(["make", "-s", "-C", str(ROOT), "run"])
    return {"make_run_seconds": round(wall, 1), "make_run_peak_mib": round(peak)}


def main() -> None:
    from orchestration.settings import load_parameters

    default_users = load_parameters().simulation.users
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[default_users, 1_000_000])
    parser.add_argument("--make-run", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep benchmarks/.work/")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    work = HERE / ".work" / "pipeline"
    try:
        if args.make_run:
            print(json.dumps(make_run(work / "make_run")), flush=True)
        for users in args.users:
            print(json.dumps(bench(users, work / f"users_{users}")), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
