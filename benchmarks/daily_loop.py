"""The daily loop at a given size: one new day through the sensors (`features` then
`daily`) against a full refresh of the same two jobs on the same data.

    .venv/bin/python benchmarks/daily_loop.py                                   # 10M order items, 5 pairs
    .venv/bin/python benchmarks/daily_loop.py --order-items 200000 --pairs 2    # a quick run

Setup (not timed): `nextbuy simulate --order-items N` (behavioural, ending 2026-10-31, as
benchmarks/dbt_features.py builds its warehouse), then `run_pipeline(full_refresh=True)`
(features, training, the gate: a champion to score with), then one `tick` so that the
sensors and schedules have their first evaluation behind them.

Each pair: `nextbuy simulate --append-days 1`, and a copy of NEXTBUY_HOME (warehouse,
Dagster instance, MLflow store, dbt's target) taken right after it. Then, each from a
fresh copy of that state:

- **incremental**: `orchestration.tick.tick(env)`, the sensor path: order_items_partitions
  requests a `features` run over the new and changed day partitions, features_ready a
  `daily` run for the date they make scorable;
- **full**: `run_job("features", full_refresh=True)` then `run_job("daily")`: every model
  rebuilt from all history, then the same daily run for the same date.

Because both start from the same copy, the order alternates from pair to pair (the
incremental run needs the new day unprocessed, which the copy gives back to it). Each
measured step is its own process (`--child`), timed for wall time and peak RSS; the runs'
own times, and each step's, come from the Dagster instance (run records and
get_run_step_stats); scoring throughput is ml/customer_scores' metadata. After each run
the scores of the date are fingerprinted, so the two ways are checked to agree.

The code measured is the checkout this script is in (it goes first on sys.path and on
the children's PYTHONPATH): run a copy of the working tree to hold the code still while
others edit it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
from dbt_features import END  # noqa: E402

NEXTBUY = Path(sys.executable).parent / "nextbuy"

DBT_FINISHED = re.compile(r"Finished running .* \((\d+\.\d+)s\)")
# One node's result line: "12 of 118 PASS unique_... [PASS in 4.09s]" (colour codes removed).
DBT_NODE = re.compile(r"^\d+ of \d+ (OK|PASS|WARN|FAIL|ERROR)\b.*\bin (\d+\.\d+)s\]", re.M)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def dbt_invocations(log: str) -> list[dict[str, float]]:
    """Per dbt invocation in a run's log, in order: dbt's own execution time ("Finished
    running ... (N s)": without its start-up and parse), and the seconds its models (and
    hooks) and its tests took, summed per node (dbt runs two threads, so these can add up
    to more than the execution time)."""
    text = ANSI.sub("", log)
    out = []
    for finished in DBT_FINISHED.finditer(text):
        chunk, text = text[: finished.start()], text[finished.end() :]
        nodes = DBT_NODE.findall(chunk)
        out.append(
            {
                "execution": float(finished.group(1)),
                "models": round(sum(float(t) for k, t in nodes if k == "OK"), 2),
                "tests": round(sum(float(t) for k, t in nodes if k != "OK"), 2),
            }
        )
    nan = {"execution": float("nan"), "models": float("nan"), "tests": float("nan")}
    return out + [nan] * (2 - len(out))


# Dagster step keys -> the groups reported.
GROWS = ("dbt", "checks", "audience", "monitoring")
GROUPS = (*GROWS, "scoring", "other")


def group_of(step_key: str) -> str:
    if step_key == "feature_models":
        return "dbt"
    if "_gx_" in step_key:
        return "checks"
    if step_key == "ml__customer_scores":
        return "scoring"
    if step_key == "scoring_models":
        return "audience"
    if step_key.startswith("monitoring__"):
        return "monitoring"
    return "other"


# ---------------------------------------------------------------------------------------
# The children: one measured step each, in a process of its own.


def child(mode: str, log: Path) -> None:
    """Run one step in this process; the last stdout line is `RESULT <json>`."""
    from orchestration.environment import current_environment
    from orchestration.pipeline import PipelineFailed, output_to, run_job, run_pipeline

    env = current_environment()
    out: dict[str, Any] = {"runs": []}
    started = time.perf_counter()
    try:
        if mode == "setup":
            result = run_pipeline(None, full_refresh=True, log_to=log)
            out["report"] = result.report
            out["scored"] = result.scored
            out["audience"] = result.audience
        elif mode == "tick":
            from orchestration.tick import tick

            with output_to(log):
                ticked = tick(env)
            out["runs"] = [
                {
                    "job": r.job,
                    "run_id": r.run_id,
                    "success": r.success,
                    "requested_by": r.requested_by,
                    "error": r.error,
                }
                for r in ticked.runs
            ]
            out["skipped"] = ticked.skipped
        elif mode in ("full", "again"):
            refresh = mode == "full"
            with output_to(log):
                for job, full_refresh in (("features", refresh), ("daily", False)):
                    t0 = time.perf_counter()
                    ran, _ = run_job(job, None, full_refresh=full_refresh)
                    out["runs"].append(
                        {
                            "job": job,
                            "run_id": ran.run_id,
                            "success": ran.success,
                            "requested_by": "run_job" + (" full_refresh" if full_refresh else ""),
                            "call_seconds": round(time.perf_counter() - t0, 2),
                        }
                    )
        else:
            raise SystemExit(f"unknown child mode {mode}")
    except PipelineFailed as e:
        out["error"] = str(e)
    out["seconds"] = round(time.perf_counter() - started, 2)
    print("RESULT " + json.dumps(out, default=str), flush=True)


# ---------------------------------------------------------------------------------------
# The parent.


def run_process(command: list[str], env: dict[str, str], out: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB, the process and every process it waited for) and
    output of a command; its output goes to ``out`` (no pipe to fill)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(out, "w", encoding="utf-8") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    text = out.read_text(encoding="utf-8", errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed ({code}):\n{text[-4000:]}")
    return wall, usage.ru_maxrss / 1024, text


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    from importlib.metadata import version

    packages = ("duckdb", "dbt-core", "dbt-duckdb", "dagster", "dagster-dbt", "catboost")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kib / 1024**2, 1),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "packages": {p: version(p) for p in packages},
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def copy_home(source: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, symlinks=True)


class Bench:
    def __init__(self, home: Path, order_items: int) -> None:
        self.home = home
        self.snapshot = home.with_name(home.name + ".after-append")
        self.logs = home.with_name(home.name + ".logs")
        self.warehouse = home / "warehouse.duckdb"
        self.order_items = order_items
        self.env = {
            **os.environ,
            "NEXTBUY_HOME": str(home),
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        os.environ["NEXTBUY_HOME"] = str(home)
        self.count = 0

    def nextbuy(self, name: str, *args: str) -> tuple[float, float, str]:
        self.count += 1
        return run_process(
            [str(NEXTBUY), *args], self.env, self.logs / f"{self.count:02d}-{name}.out"
        )

    def child(self, mode: str, name: str) -> dict[str, Any]:
        self.count += 1
        stem = self.logs / f"{self.count:02d}-{name}"
        wall, peak, text = run_process(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                mode,
                "--log",
                f"{stem}.log",
            ],
            self.env,
            stem.with_suffix(".out"),
        )
        lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
        if not lines:
            raise SystemExit(f"{name}: no result; see {stem}.out and {stem}.log")
        result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
        result["process_seconds"] = round(wall, 2)
        result["peak_rss_mib"] = round(peak)
        result["log"] = f"{stem}.log"
        return result

    def run_figures(self, run_id: str) -> dict[str, Any]:
        """Wall time of a run (its records), each step's and each group's seconds, and the
        scores' metadata."""
        import dagster as dg
        from dagster._core.events import DagsterEventType

        from orchestration.environment import current_environment
        from orchestration.instance import instance

        with instance(current_environment()) as inst:
            record = inst.get_run_record_by_id(run_id)
            assert record is not None
            steps = {
                s.step_key: round(s.end_time - s.start_time, 3)
                for s in inst.get_run_step_stats(run_id)
                if s.start_time and s.end_time
            }
            scores: dict[str, Any] = {}
            for entry in inst.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
                m = entry.dagster_event.event_specific_data.materialization  # type: ignore[union-attr]
                if m.asset_key == dg.AssetKey(["ml", "customer_scores"]):
                    scores = {k: v.value for k, v in m.metadata.items()}
            tags = dict(record.dagster_run.tags)
        groups = {g: 0.0 for g in GROUPS}
        for key, seconds in steps.items():
            groups[group_of(key)] += seconds
        wall = (record.end_time or 0) - (record.start_time or 0)
        return {
            "run_id": run_id,
            "status": record.dagster_run.status.value,
            "wall": round(wall, 3),
            "steps": steps,
            "groups": {g: round(v, 3) for g, v in groups.items()},
            "overhead": round(wall - sum(steps.values()), 3),
            "customers_scored": scores.get("dagster/row_count"),
            "scoring_seconds": scores.get("seconds"),
            "customers_per_second": scores.get("customers_per_second"),
            "as_of": scores.get("as_of"),
            "partitions": tags.get("nextbuy/partitions")
            or tags.get("dagster/partition")
            or (
                f"{tags.get('dagster/asset_partition_range_start')}.."
                f"{tags.get('dagster/asset_partition_range_end')}"
            ),
        }

    def fingerprint(self, as_of: str | None) -> dict[str, Any]:
        """What the run left for the date: its scores and audience, fingerprinted."""
        import duckdb

        con = duckdb.connect(str(self.warehouse), read_only=True)
        try:
            scores = con.execute(
                """select count(*), sum(hash(customer_id, round(score, 9))) % 1000000007
                   from ml.customer_scores where as_of = ?""",
                [as_of],
            ).fetchone()
            audience = con.execute(
                "select count(*), sum(hash(customer_id)) % 1000000007 from marts.campaign_audience"
            ).fetchone()
            features = con.execute(
                """select count(*), sum(hash(customer_id, prior_orders, days_since_last_order,
                                            brand_sequence)) % 1000000007
                   from marts.customer_features"""
            ).fetchone()
        finally:
            con.close()
        return {
            "scores": [int(v or 0) for v in scores or ()],
            "audience": [int(v or 0) for v in audience or ()],
            "customer_features": [int(v or 0) for v in features or ()],
        }

    def measure(self, way: str, pair: int) -> dict[str, Any]:
        if way != "again":  # "again" goes on from the state the incremental run left
            copy_home(self.snapshot, self.home)
        os.sync()
        before = load()
        result = self.child("tick" if way == "incremental" else way, f"pair{pair}-{way}")
        if result.get("error"):
            raise SystemExit(f"pair {pair}, {way}: {result['error']} (log {result['log']})")
        runs = [self.run_figures(r["run_id"]) | {"job": r["job"]} for r in result["runs"]]
        failed = [r for r in result["runs"] if not r["success"]]
        if failed:
            raise SystemExit(f"pair {pair}, {way}: failed runs {failed} (log {result['log']})")
        loop = [r for r in runs if r["job"] in ("features", "daily")]
        jobs = [r["job"] for r in loop]
        if jobs != ["features", "daily"]:
            raise SystemExit(f"pair {pair}, {way}: ran {jobs}, not features then daily")
        others = [r for r in runs if r["job"] not in ("features", "daily")]
        # dbt's invocations in order: the feature build, then the scoring models (audience).
        dbt = dbt_invocations(Path(result["log"]).read_text(errors="replace"))
        groups = {g: round(sum(r["groups"][g] for r in loop), 3) for g in GROUPS}
        daily = loop[1]
        figures = {
            "way": way,
            "load_before": before,
            "process_seconds": result["process_seconds"],
            "peak_rss_mib": result["peak_rss_mib"],
            "runs_wall": round(sum(r["wall"] for r in loop), 3),
            "features_wall": loop[0]["wall"],
            "daily_wall": daily["wall"],
            "groups": groups,
            "grows": round(sum(groups[g] for g in GROWS), 3),
            "overhead": round(sum(r["overhead"] for r in loop), 3),
            "dbt": {"features": dbt[0], "audience": dbt[1]},
            "customers_scored": daily["customers_scored"],
            "customers_per_second": daily["customers_per_second"],
            "as_of": daily["as_of"],
            "partitions": loop[0]["partitions"],
            "other_runs": [{"job": r["job"], "wall": r["wall"]} for r in others],
            "runs": loop,
            "fingerprint": self.fingerprint(daily["as_of"]),
            "log": result["log"],
        }
        g = groups
        print(
            f"  {way:<11} process {figures['process_seconds']:7.1f} s | runs {figures['runs_wall']:7.1f} s"
            f" (features {figures['features_wall']:.1f}, daily {figures['daily_wall']:.1f})"
            f" | dbt {g['dbt']:.1f} checks {g['checks']:.1f} audience {g['audience']:.1f}"
            f" monitoring {g['monitoring']:.1f} -> grows {figures['grows']:.1f}"
            f" | scoring {g['scoring']:.1f} s ({figures['customers_per_second'] or 0:,} customers/s)"
            f" | peak {figures['peak_rss_mib']:,} MiB | partitions {figures['partitions']}"
            + (f" | also ran {figures['other_runs']}" if others else ""),
            flush=True,
        )
        return figures


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def step_seconds(figures: dict[str, Any], key: str) -> float:
    return float(sum(r["steps"].get(key, 0.0) for r in figures["runs"]))


ROWS: list[tuple[str, Any]] = [
    ("process wall (child: imports, definitions, runs)", lambda f: f["process_seconds"]),
    ("runs wall (features + daily)", lambda f: f["runs_wall"]),
    ("  features run", lambda f: f["features_wall"]),
    ("  daily run", lambda f: f["daily_wall"]),
    ("dbt: feature_models (build + tests)", lambda f: f["groups"]["dbt"]),
    ("  dbt's execution (without its start-up)", lambda f: f["dbt"]["features"]["execution"]),
    ("  its models, summed per node", lambda f: f["dbt"]["features"]["models"]),
    ("  its tests, summed per node", lambda f: f["dbt"]["features"]["tests"]),
    ("checks: GX on the marts", lambda f: f["groups"]["checks"]),
    ("audience: scoring_models (dbt)", lambda f: f["groups"]["audience"]),
    ("  dbt's execution", lambda f: f["dbt"]["audience"]["execution"]),
    ("monitoring: drift, realised, report", lambda f: f["groups"]["monitoring"]),
    ("  feature drift", lambda f: step_seconds(f, "monitoring__feature_drift")),
    ("  realised performance", lambda f: step_seconds(f, "monitoring__realised_performance")),
    ("  HTML report", lambda f: step_seconds(f, "monitoring__report")),
    ("grows with history (the four above)", lambda f: f["grows"]),
    ("scoring: ml__customer_scores", lambda f: f["groups"]["scoring"]),
    ("Dagster between steps (runs - steps)", lambda f: f["overhead"]),
]


def report(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    inc = [p["incremental"] for p in pairs]
    full = [p["full"] for p in pairs]
    # --again: the same two jobs once more right after the incremental run, nothing new.
    again = [p["again"] for p in pairs if "again" in p]
    print(f"\nMedians over {len(pairs)} pairs (seconds)")
    extra_head, extra_rule = "", ""
    if again:
        extra_head, extra_rule = " nothing new | ratio |", "-------------|-------|"
    print(f"| {'':<50} | incremental | full refresh | ratio |{extra_head}")
    print(f"|{'-' * 52}|-------------|--------------|-------|{extra_rule}")
    medians: dict[str, Any] = {}

    def share(a: float, b: float) -> str:
        return f"{a / b:6.1%}" if b else "   -  "

    for name, get in ROWS:
        a, b = median([get(f) for f in inc]), median([get(f) for f in full])
        medians[name.strip()] = {"incremental": a, "full": b}
        line = f"| {name:<50} | {a:11.2f} | {b:12.2f} | {share(a, b)} |"
        if again:
            c = median([get(f) for f in again])
            medians[name.strip()]["again"] = c
            line += f" {c:11.2f} | {share(c, b)} |"
        print(line)
    for key, label in (
        ("customers_per_second", "scoring throughput (customers/s)"),
        ("peak_rss_mib", "peak RSS (MiB)"),
    ):
        a = median([f[key] or 0 for f in inc])
        b = median([f[key] or 0 for f in full])
        medians[key] = {"incremental": a, "full": b}
        line = f"| {label:<50} | {a:11,.0f} | {b:12,.0f} |       |"
        if again:
            c = median([f[key] or 0 for f in again])
            medians[key]["again"] = c
            line += f" {c:11,.0f} |       |"
        print(line)

    print("\nPer pair: incremental as a share of full (same data)")
    head = "| pair | first | grows with history | runs wall | process wall | scores agree |"
    rule = "|---|---|---|---|---|---|"
    if again:
        head += " nothing new: grows | its scores agree |"
        rule += "---|---|"
    print(head)
    print(rule)
    shares: dict[str, list[float]] = {"grows": [], "runs_wall": [], "process_seconds": []}
    floor: list[float] = []
    for i, (p, f_inc, f_full) in enumerate(zip(pairs, inc, full, strict=True), 1):
        row = {k: f_inc[k] / f_full[k] for k in shares}
        for k, v in row.items():
            shares[k].append(v)
        agree = f_inc["fingerprint"] == f_full["fingerprint"]
        line = (
            f"| {i} | {p['first']} | {row['grows']:.1%} | {row['runs_wall']:.1%} |"
            f" {row['process_seconds']:.1%} | {'yes' if agree else 'NO'} |"
        )
        if "again" in p:
            floor.append(p["again"]["grows"] / f_full["grows"])
            same = p["again"]["fingerprint"]["scores"] == f_inc["fingerprint"]["scores"]
            line += f" {floor[-1]:.1%} | {'yes' if same else 'NO'} |"
        print(line)
    summary = {k: median(v) for k, v in shares.items()}
    line = (
        f"| median | | {summary['grows']:.1%} | {summary['runs_wall']:.1%} |"
        f" {summary['process_seconds']:.1%} | |"
    )
    if floor:
        summary["again_grows"] = median(floor)
        line += f" {summary['again_grows']:.1%} | |"
    print(line)
    return {"medians": medians, "share_medians": summary, "shares": shares, "again_shares": floor}


def setup(
    bench: Bench, order_items: int, results: dict[str, Any], raw_from: Path | None = None
) -> None:
    """The shop and a champion: simulate (or copy the warehouse a `nextbuy simulate` with
    the same arguments wrote), then the whole pipeline once (not timed)."""
    if raw_from is not None:
        shutil.copyfile(raw_from, bench.warehouse)
        print(f"simulate: the shop copied from {raw_from}", flush=True)
        results["simulated_by"] = str(raw_from)
    else:
        _simulate(bench, order_items, results)
    _setup_pipeline(bench, results)


def _simulate(bench: Bench, order_items: int, results: dict[str, Any]) -> None:
    wall, peak, out = bench.nextbuy(
        "simulate",
        "simulate",
        "--order-items",
        str(order_items),
        "--end",
        END.isoformat(),
        "--warehouse",
        str(bench.warehouse),
    )
    print(f"simulate: {wall:.1f} s, peak {peak:,.0f} MiB\n  " + out.strip().replace("\n", "\n  "))
    results["simulate_seconds"] = round(wall, 1)


def _setup_pipeline(bench: Bench, results: dict[str, Any]) -> None:
    pipeline = bench.child("setup", "setup")
    if pipeline.get("error"):
        raise SystemExit(f"setup: {pipeline['error']} (log {pipeline['log']})")
    report = pipeline["report"]
    print(
        f"setup, run_pipeline(full_refresh=True) (not timed): {pipeline['process_seconds']:.1f} s,"
        f" peak {pipeline['peak_rss_mib']:,} MiB; champion {report['champion']}"
        f" ({report['champion_kind']}), promoted {report['promoted']};"
        f" {pipeline['scored']:,} customers scored, audience {pipeline['audience']:,}",
        flush=True,
    )
    results["setup"] = pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order-items", type=int, default=10_000_000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="NEXTBUY_HOME of the run (default benchmarks/.work/daily_loop_<N>/home); "
        "its copy and logs go beside it",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the home and its copy (the logs are always kept)"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="run the pairs on the shop and champion a --keep run left in --home "
        "(no simulate, no setup): more days on the same history",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="RESULTS_JSON",
        help="print the tables again from a run's results.json (and its logs), run nothing",
    )
    parser.add_argument(
        "--raw-from",
        type=Path,
        metavar="WAREHOUSE",
        help="start from a copy of this warehouse instead of simulating, one written by "
        "`nextbuy simulate --order-items N --end 2026-10-31 --warehouse WAREHOUSE` "
        "(a warehouse file whose name is not raw.duckdb)",
    )
    parser.add_argument(
        "--again",
        action="store_true",
        help="in each pair, right after the incremental run, run the same two jobs again "
        "with nothing new (`features` without a refresh, then `daily` for the same date): "
        "what a daily run costs whatever the day brought",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.log)
        return
    if args.report:
        saved = json.loads(args.report.read_text(encoding="utf-8"))
        for saved_pair in saved["pairs"]:
            for way in ("incremental", "full", "again"):
                figures = saved_pair.get(way)
                if figures is None:
                    continue
                if "dbt" not in figures:  # a results.json of an earlier version of this script
                    text = Path(figures["log"]).read_text(errors="replace")
                    features, audience = dbt_invocations(text)[:2]
                    figures["dbt"] = {"features": features, "audience": audience}
        print(f"machine: {json.dumps(saved['machine'])}")
        report(saved["pairs"])
        return

    home = (args.home or HERE / ".work" / f"daily_loop_{args.order_items}" / "home").resolve()
    bench = Bench(home, args.order_items)
    if args.reuse:
        if not bench.warehouse.exists():
            raise SystemExit(f"--reuse: no warehouse in {home}")
        shutil.rmtree(bench.logs, ignore_errors=True)
    else:
        for path in (home, bench.snapshot, bench.logs):
            shutil.rmtree(path, ignore_errors=True)
        home.mkdir(parents=True)
    info = machine_info()
    info["load_at_start"] = load()
    info["code"] = str(ROOT)
    print(f"machine: {json.dumps(info)}", flush=True)
    print(f"NEXTBUY_HOME {home}; logs in {bench.logs}", flush=True)
    results: dict[str, Any] = {
        "machine": info,
        "order_items": args.order_items,
        "reuse": args.reuse,
    }
    try:
        if args.reuse:
            print(f"reusing the warehouse and champion in {home} (no simulate, no setup)")
        else:
            setup(bench, args.order_items, results, args.raw_from)
        first = bench.child("tick", "first-tick")
        print(
            f"first tick (not timed): {first['process_seconds']:.1f} s, runs "
            f"{[r['job'] for r in first['runs']]}; {first.get('skipped')}",
            flush=True,
        )
        print(
            "\nEach pair appends one day, copies NEXTBUY_HOME, and runs both ways from that "
            "copy, alternating which goes first.",
            flush=True,
        )
        pairs = []
        for i in range(args.pairs):
            wall, _, out = bench.nextbuy(f"pair{i + 1}-append", "simulate", "--append-days", "1")
            line = out.strip().splitlines()[0] if out.strip() else ""
            copy_start = time.perf_counter()
            copy_home(home, bench.snapshot)
            copy_seconds = time.perf_counter() - copy_start
            print(
                f"pair {i + 1}: append {wall:.1f} s ({line}); copy of the home {copy_seconds:.1f} s;"
                f" load {load()}",
                flush=True,
            )
            order = ("incremental", "full") if i % 2 == 0 else ("full", "incremental")
            pair: dict[str, Any] = {"first": order[0], "append_seconds": round(wall, 1)}
            for way in order:
                pair[way] = bench.measure(way, i + 1)
                if way == "incremental" and args.again:
                    pair["again"] = bench.measure("again", i + 1)
            pairs.append(pair)
        results["pairs"] = pairs
        info["load_at_end"] = load()
        print(
            f"\nload average (1, 5, 15 min): at start {info['load_at_start']}, at end {info['load_at_end']}"
        )
        results["summary"] = report(pairs)
        print(
            "\nincremental = one tick: the sensors request `features` over the new/changed day "
            "partitions, then `daily`; full = run_job('features', full_refresh=True) then "
            "run_job('daily'), same data (both from one copy of NEXTBUY_HOME after the append)."
        )
        out_json = bench.logs / "results.json"
        out_json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
        print(f"figures: {out_json}")
    finally:
        if not args.keep:
            for path in (home, bench.snapshot):
                shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
