"""`nextbuy`: the command line of the pipeline.

Kept whole: one thin function per command (options, a call into the module that does the
work, what to print), so this file reads like `nextbuy --help`.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml

from orchestration.cli_errors import RefusingGroup, settings_refusal
from orchestration.environment import current_environment, disable_telemetry
from orchestration.runlock import run_log as _run_log
from orchestration.runlock import writes_state
from orchestration.settings import Parameters, ParametersError, load_parameters

if TYPE_CHECKING:
    from orchestration.environment import Environment
    from orchestration.resources import Warehouse


def _warehouse(path: str | None) -> Path:
    return Path(path) if path else current_environment().warehouse_path


def _parameters() -> Parameters:
    """The validated parameters file; a bad setting ends the command with its name."""
    try:
        return load_parameters()
    except ParametersError as e:
        raise click.ClickException(str(e)) from e


warehouse_option = click.option(
    "--warehouse",
    "warehouse_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="DuckDB file to use (default: $NEXTBUY_HOME/warehouse.duckdb).",
)


@click.group(cls=RefusingGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """nextbuy: next-order brand propensity, from warehouse features to scores."""
    disable_telemetry()


@main.command("load-thelook")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--replace", is_flag=True, help="Make this export the whole raw dataset.")
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Accept header-only files, and a --replace that empties tables holding rows.",
)
@warehouse_option
@writes_state
def load_thelook(
    paths: tuple[Path, ...], replace: bool, allow_empty: bool, warehouse_path: str | None
) -> None:
    """Load a thelook export (directory or files of CSV / CSV.gz) into raw.

    Merges by default: day partitions of order_items in the export replace those in the
    warehouse; rows of the other tables replace those with the same primary key.
    """
    from thelook.loader import LoadError, load_export
    from thelook.warehouse import connect

    path = _warehouse(warehouse_path)
    con = connect(path)
    try:
        result = load_export(con, paths, replace_all=replace, allow_empty=allow_empty)
    except LoadError as e:
        raise click.ClickException(f"load failed, raw unchanged: {e}") from e
    finally:
        con.close()
    for t in result.tables:
        extra = f", {len(t.partitions):,} partitions" if t.partitions else ""
        notes = ""
        if t.absent_columns:
            notes += f"; absent (loaded as NULL): {', '.join(t.absent_columns)}"
        if t.ignored_columns:
            notes += f"; ignored (not in the schema): {', '.join(t.ignored_columns)}"
        click.echo(f"raw.{t.table}: {t.rows:,} rows{extra}{notes}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"loaded into {path}")


@main.command("export-thelook")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@warehouse_option
def export_thelook(directory: Path, warehouse_path: str | None) -> None:
    """Write raw as a thelook export (one <table>.csv.gz per table)."""
    from thelook.loader import export_raw
    from thelook.warehouse import connect

    con = connect(_warehouse(warehouse_path), read_only=True)
    for table, path in export_raw(con, directory).items():
        click.echo(f"raw.{table} -> {path}")


@main.command()
@click.option("--mode", type=click.Choice(["behavioural", "thelook"]), default=None)
@click.option("--users", type=click.IntRange(min=1), default=None, help="Number of customers.")
@click.option(
    "--order-items", type=click.IntRange(min=1), default=None, help="Size by order items instead."
)
@click.option("--seed", type=int, default=None)
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last simulated day.")
@click.option(
    "--append-days",
    type=click.IntRange(min=1),
    default=None,
    help="Extend the existing simulation by K new daily partitions instead.",
)
@warehouse_option
@writes_state
def simulate(
    mode: str | None,
    users: int | None,
    order_items: int | None,
    seed: int | None,
    end: dt.datetime | None,
    append_days: int | None,
    warehouse_path: str | None,
) -> None:
    """Write simulated thelook data into raw (settings from parameters.yaml)."""
    from pydantic import ValidationError

    from thelook import simulator
    from thelook.warehouse import connect

    if append_days is not None:
        if any(v is not None for v in (mode, users, order_items, seed, end)):
            raise click.UsageError(
                "--append-days continues the stored simulation; give no other settings"
            )
        con = connect(_warehouse(warehouse_path))
        try:
            result = simulator.append_days(con, append_days)
        except simulator.SimulationError as e:
            raise click.ClickException(str(e)) from e
        finally:
            con.close()
        click.echo(result.describe())
        return
    if users is not None and order_items is not None:
        raise click.UsageError("give --users or --order-items, not both")
    params = _parameters()
    overrides = {
        k: v
        for k, v in {
            "mode": mode,
            "seed": seed,
            "end": end.date() if end else None,
            "users": users,
        }.items()
        if v is not None
    }
    try:
        settings = params.simulation.with_overrides(**overrides)
        if order_items is not None:
            settings = settings.with_overrides(users=settings.users_for_order_items(order_items))
    except ValidationError as e:
        raise settings_refusal(e, {f: f"--{f}" for f in overrides}) from e
    con = connect(_warehouse(warehouse_path))
    try:
        result = simulator.simulate(con, settings, params.campaign.target_brands)
    finally:
        con.close()
    click.echo(result.describe())


@main.command()
@warehouse_option
def warehouse(warehouse_path: str | None) -> None:
    """Show what the warehouse's raw schema holds."""

    path = _require_warehouse(_warehouse(warehouse_path))
    _print_warehouse(path)


@main.group(cls=RefusingGroup)
def partitions() -> None:
    """Day partitions of raw tables."""


@partitions.command("drop")
@click.argument("partition_id")
@click.option("--table", default="order_items", show_default=True, help="The raw table.")
@warehouse_option
@writes_state
def drop_partition(partition_id: str, table: str, warehouse_path: str | None) -> None:
    """Remove day partition PARTITION_ID (YYYYMMDD) from raw, with its meta.partitions
    record, in one transaction; the next `features` run rebuilds the marts without it."""
    from orchestration.cli_errors import Refusal
    from thelook.warehouse import WarehouseWriteError, connect
    from thelook.warehouse import drop_partition as drop

    if not (len(partition_id) == 8 and partition_id.isdigit()):
        raise Refusal(f"{partition_id!r} is not a day partition id (YYYYMMDD)")
    path = _require_warehouse(_warehouse(warehouse_path))
    con = connect(path)
    try:
        rows = drop(con, table, partition_id, source="nextbuy partitions drop")
    except WarehouseWriteError as e:
        raise Refusal(f"nothing dropped from {path}: {e}") from e
    finally:
        con.close()
    click.echo(
        f"raw.{table}: dropped partition {partition_id} ({rows:,} row{'s' if rows != 1 else ''}) "
        f"from {path}; "
        "the next `nextbuy features` rebuilds the marts without it"
    )


def _to_terminal() -> Callable[[str], None]:
    """Progress lines for the terminal the command started on, even while a run's own
    output is redirected to the log."""
    terminal = sys.stdout

    def echo(line: str) -> None:
        click.echo(line, file=terminal)

    return echo


def _require_data(env: Environment) -> None:
    """Refuse to run a job without data: the DuckDB file must exist locally; in
    production the warehouse is BigQuery, and its steps say what is missing there."""
    if env.name != "production":
        _require_warehouse(env.warehouse_path)


def _engine(warehouse_path: str | None) -> Warehouse:
    """The warehouse a reading command works on: BigQuery in production (unless a DuckDB
    file is named), else the DuckDB file, which must exist."""
    from orchestration.resources import WarehouseResource, warehouse_resource

    env = current_environment()
    if env.name == "production" and warehouse_path is None:
        return warehouse_resource(env)
    return WarehouseResource(path=str(_require_warehouse(_warehouse(warehouse_path))))


def _require_warehouse(path: Path) -> Path:
    if not path.exists():
        raise click.ClickException(
            f"no warehouse at {path}; run `nextbuy simulate` or `nextbuy load-thelook`"
        )
    return path


def _print_warehouse(path: Path) -> None:
    import pandas as pd

    from thelook.warehouse import connect, summarize

    con = connect(path, read_only=True)
    try:
        frame = pd.DataFrame(
            {
                "table": f"raw.{s.table}",
                "rows": f"{s.rows:,}",
                "day partitions": (
                    f"{s.partitions:,} ({s.first_partition} .. {s.last_partition})"
                    if s.partitions
                    else ""
                ),
            }
            for s in summarize(con)
        )
    finally:
        con.close()
    click.echo(f"warehouse {path}")
    click.echo(frame.to_string(index=False))


@main.command(
    "dbt",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@warehouse_option
@writes_state
def dbt_command(args: tuple[str, ...], warehouse_path: str | None) -> None:
    """Run any dbt command on the project, with parameters.yaml as vars.

    Example: nextbuy dbt build --select marts --vars '{as_of: 2026-11-01}'
    """
    from orchestration.dbt import run_dbt

    extra: dict[str, object] = {}
    rest = list(args)
    if "--vars" in rest:
        i = rest.index("--vars")
        extra = yaml.safe_load(rest[i + 1]) or {}
        del rest[i : i + 2]
    try:
        # A var that a setting backs is checked as the setting is, before dbt starts.
        params = _parameters().with_dbt_vars(extra, source="--vars")
    except ParametersError as e:
        raise click.ClickException(str(e)) from e
    result = run_dbt(
        rest, warehouse=_warehouse(warehouse_path), vars=extra, params=params, check=False
    )
    sys.exit(result.returncode)


@main.command()
@click.option(
    "--as-of",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Scoring date (default: the day after the newest complete day of data).",
)
@click.option(
    "--full-refresh", is_flag=True, help="Rebuild incremental models from all of history."
)
@warehouse_option
@writes_state
def features(as_of: dt.datetime | None, full_refresh: bool, warehouse_path: str | None) -> None:
    """Materialise the dbt feature models (the `features` job: dbt build, its tests and the
    marts' checks) and show the marts' row counts."""
    from orchestration.pipeline import PipelineFailed, run_job
    from orchestration.resources import duckdb_file

    engine = _engine(warehouse_path)
    path = duckdb_file(engine)
    _parameters()
    log = _run_log()
    try:
        run_job(
            "features",
            as_of.date() if as_of else None,
            full_refresh=full_refresh,
            log_to=log,
            warehouse=path,
            progress=_to_terminal(),
        )
    except PipelineFailed as e:
        raise click.ClickException(
            f"features failed; models that failed or were skipped keep their previous "
            f"tables:\n{e}\nfull log: {log}"
        ) from e
    _print_marts(engine)


def _print_marts(warehouse: Warehouse) -> None:
    import pandas as pd

    def first(sql: str) -> Any:
        value = warehouse.query(sql).iloc[0, 0]
        return None if pd.isna(value) else value

    marts = ("marts.training_examples", "marts.customer_features")
    counts = pd.DataFrame(
        {"mart": name, "rows": f"{first(f'select count(*) from {warehouse.relation(name)}'):,}"}
        for name in marts
    )
    label = first(f"select avg(label) from {warehouse.relation(marts[0])}")
    click.echo(counts.to_string(index=False))
    if label is not None:
        click.echo(f"label rate (next order holds a target brand): {label:.3f}")


@main.command()
@click.option("--serve/--no-serve", default=True, help="Serve the site after generating it.")
@click.option("--port", type=int, default=8580)
@warehouse_option
def docs(serve: bool, port: int, warehouse_path: str | None) -> None:
    """Generate the dbt docs site (models, columns, lineage) and serve it."""
    from orchestration.dbt import dbt_target_path, run_dbt

    path = _warehouse(warehouse_path)
    run_dbt(["docs", "generate"], warehouse=path, params=_parameters())
    click.echo(
        f"dbt docs generated in {dbt_target_path(current_environment(), path)} "
        "(index.html, manifest.json, catalog.json)"
    )
    if serve:
        run_dbt(
            ["docs", "serve", "--port", str(port), "--no-browser"], warehouse=path, with_vars=False
        )


@main.command("lint-sql")
def lint_sql_command() -> None:
    """Lint the dbt models and tests with sqlfluff (dbt templater)."""
    from orchestration.dbt import lint_sql

    violations = lint_sql()
    for line in violations:
        click.echo(line)
    if violations:
        raise click.ClickException(f"{len(violations)} sqlfluff violation(s)")
    click.echo("sqlfluff: no violations")


def _pipeline_and_report(
    as_of: dt.date | None, full_refresh: bool, with_features: bool = True
) -> None:
    from orchestration.pipeline import PipelineFailed, run_pipeline, run_retrain
    from orchestration.run_report import report_json, report_lines

    env = current_environment()
    log = _run_log()
    what = "pipeline" if with_features else "retrain"
    click.echo(f"running the {what} in process (full log: {log}) ...")
    try:
        if with_features:
            result = run_pipeline(
                as_of, full_refresh=full_refresh, log_to=log, progress=_to_terminal()
            )
        else:
            result = run_retrain(as_of, log_to=log, progress=_to_terminal())
    except PipelineFailed as e:
        raise click.ClickException(
            f"{what} failed; the previous champion, scores and audience stay in place:\n{e}"
            f"\nfull log: {log}"
        ) from e
    for line in report_lines(result, env):
        click.echo(line)
    # Last line: one JSON object for scripts.
    click.echo(report_json(result))


@main.command()
@click.option(
    "--as-of",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help=(
        "Date customer_features is computed as of (default: the day after the newest "
        "complete day partition of raw.order_items)."
    ),
)
@click.option("--full-refresh", is_flag=True, help="Rebuild incremental models from scratch.")
@writes_state
def pipeline(as_of: dt.datetime | None, full_refresh: bool) -> None:
    """Run the whole pipeline on the current warehouse: features, checks, training, gate,
    scores, audience; then print the report."""
    _require_data(current_environment())
    _parameters()
    _pipeline_and_report(as_of.date() if as_of else None, full_refresh)


@main.command()
@click.option(
    "--as-of",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Date to score (default: the date customer_features is computed as of).",
)
@writes_state
def retrain(as_of: dt.datetime | None) -> None:
    """Run the `retrain` job on the features the warehouse holds, without rebuilding them:
    training, gate, scores, audience, monitoring; then print the report. For a change of
    parameters.yaml's model or gate, or the weekly retrain by hand."""
    _require_data(current_environment())
    _parameters()
    _pipeline_and_report(as_of.date() if as_of else None, False, with_features=False)


@main.command()
@click.option(
    "--thelook",
    "thelook_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Use this thelook export (CSV / CSV.gz) instead of simulated data.",
)
@writes_state
def demo(thelook_dir: Path | None) -> None:
    """The main job on the embedded default: make the warehouse (the default simulated
    shop, or a thelook export), then run the whole pipeline in process and report."""
    from orchestration.demo import DemoError, prepare_warehouse

    env = current_environment()
    try:
        prepared = prepare_warehouse(env.warehouse_path, _parameters(), thelook_dir)
    except DemoError as e:
        raise click.ClickException(str(e)) from e
    if prepared.description:
        click.echo(prepared.description)
    _print_warehouse(env.warehouse_path)
    _pipeline_and_report(prepared.as_of, full_refresh=True)


@main.command()
@writes_state
def tick() -> None:
    """Evaluate the sensors and schedules once, as the Dagster daemon would, and run in
    process what they request: new or corrected day partitions, a `features` run; new
    features, a `daily` run (scores, audience, monitoring); an alert or the weekly
    schedule, a `retrain` run."""
    from orchestration.tick import TickRun
    from orchestration.tick import tick as run_tick

    env = current_environment()
    _require_data(env)
    _parameters()
    log = _run_log()
    click.echo(f"tick (full log: {log}) ...")

    def show(run: TickRun) -> None:
        tags = ", ".join(
            f"{k.removeprefix('nextbuy/')} {v}"
            for k, v in run.tags.items()
            if k.startswith("nextbuy/")
        )
        state = "succeeded" if run.success else f"FAILED\n{run.error}"
        click.echo(f"{run.requested_by} -> {run.job} run {run.run_id} ({tags}): {state}")
        for line in run.changes:
            click.echo(f"  {line}")

    from orchestration.pipeline import output_to

    echo = _to_terminal()  # before the output goes to the log
    with output_to(log, echo):
        result = run_tick(env, progress=echo)
    for run in result.runs:
        show(run)
    for name, why in result.skipped.items():
        click.echo(f"{name}: {why}")
    if not result.runs:
        click.echo("nothing to do")
    if any(not run.success for run in result.runs):
        raise click.ClickException(
            f"a requested run failed; what it did not materialise stays as it was\nfull log: {log}"
        )


@main.command()
@click.option(
    "--as-of",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="The audience's date (default: the date campaign_audience holds, the newest run's).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the audience as CSV for an e-mail tool (email, names, id, rank, score, ...).",
)
@warehouse_option
def audience(as_of: dt.datetime | None, out: Path | None, warehouse_path: str | None) -> None:
    """Show the campaign audience: its size, where it was cut and how ties at the cut were
    broken; with --out, export it as CSV, best first."""
    from orchestration.audience import AudienceError, audience_cut, export_audience

    warehouse = _engine(warehouse_path)
    date = as_of.date().isoformat() if as_of else None
    try:
        cut = audience_cut(warehouse, date)
        click.echo(f"campaign_audience: {cut.describe()}")
        if out is not None:
            rows = export_audience(warehouse, out, cut.as_of)
            click.echo(f"wrote {rows:,} customers to {out}")
    except AudienceError as e:
        raise click.ClickException(str(e)) from e


@main.command()
@writes_state
def rollback() -> None:
    """Move the registry's champion alias back to the previous champion."""
    from orchestration.registry import RegistryError
    from orchestration.resources import RegistryResource

    registry = RegistryResource.for_environment(current_environment()).open(_parameters().registry)
    try:
        ref = registry.rollback()
    except RegistryError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"champion is now {ref.label()}; the next scoring run uses it")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port to listen on.")
def serve(host: str, port: int) -> None:
    """Serve online scores until Ctrl-C: POST /score, GET /model, GET /health, /docs."""
    from serving.cli import serve as run_server

    _require_warehouse(current_environment().warehouse_path)
    _parameters()
    run_server(host, port)


@main.command()
@click.option("--port", type=int, default=3000, help="Dagster UI port.")
@click.option("--docs-port", type=int, default=8580, help="dbt docs port.")
@click.option("--mlflow-port", type=int, default=5000, help="MLflow UI port.")
def ui(port: int, docs_port: int, mlflow_port: int) -> None:
    """Start the Dagster UI, serve the dbt docs and the MLflow UI, until Ctrl-C."""
    from orchestration.ui import UiPorts, serve_uis

    serve_uis(current_environment(), UiPorts(port, docs_port, mlflow_port), echo=click.echo)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Also print one JSON line per check.")
def doctor(as_json: bool) -> None:
    """Check this NEXTBUY_HOME without changing it (warehouse, leftovers, marts against
    raw and the settings, dangling runs, the champion) and print the command that repairs
    each problem; exit 1 when there is one."""
    import json

    from orchestration.doctor import diagnose

    env = current_environment()
    checks = diagnose(env)
    click.echo(f"nextbuy doctor: {env.home}")
    for check in checks:
        for line in check.lines():
            click.echo(f"  {line}")
    problems = sum(not c.ok for c in checks)
    click.echo(f"{problems} problem(s) found" if problems else f"all {len(checks)} checks ok")
    if as_json:
        for check in checks:
            click.echo(json.dumps(check.as_json()))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    sys.exit(main())
