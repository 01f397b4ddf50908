"""`nextbuy`: the command line of the pipeline."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from orchestration.environment import current_environment, disable_telemetry
from orchestration.parameters import load_parameters


def _warehouse(path: str | None) -> Path:
    return Path(path) if path else current_environment().warehouse_path


warehouse_option = click.option(
    "--warehouse",
    "warehouse_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="DuckDB file to use (default: $NEXTBUY_HOME/warehouse.duckdb).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """nextbuy: next-order brand propensity, from warehouse features to scores."""
    disable_telemetry()


@main.command("load-thelook")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--replace", is_flag=True, help="Make this export the whole raw dataset.")
@warehouse_option
def load_thelook(paths: tuple[Path, ...], replace: bool, warehouse_path: str | None) -> None:
    """Load a thelook export (directory or files of CSV / CSV.gz) into raw.

    Merges by default: day partitions of order_items in the export replace those in the
    warehouse; rows of the other tables replace those with the same primary key.
    """
    from thelook.loader import LoadError, load_export
    from thelook.warehouse import connect

    path = _warehouse(warehouse_path)
    con = connect(path)
    try:
        result = load_export(con, paths, replace_all=replace)
    except LoadError as e:
        raise click.ClickException(f"load failed, raw unchanged: {e}") from e
    for t in result.tables:
        extra = f", {len(t.partitions)} partitions" if t.partitions else ""
        notes = ""
        if t.absent_columns:
            notes += f"; absent (loaded as NULL): {', '.join(t.absent_columns)}"
        if t.ignored_columns:
            notes += f"; ignored (not in the schema): {', '.join(t.ignored_columns)}"
        click.echo(f"raw.{t.table}: {t.rows:,} rows{extra}{notes}")
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
@click.option("--users", type=int, default=None, help="Number of customers.")
@click.option("--order-items", type=int, default=None, help="Size by order items instead.")
@click.option("--seed", type=int, default=None)
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last simulated day.")
@click.option(
    "--append-days",
    type=click.IntRange(min=1),
    default=None,
    help="Extend the existing simulation by K new daily partitions instead.",
)
@warehouse_option
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
    from thelook import simulator
    from thelook.warehouse import connect

    con = connect(_warehouse(warehouse_path))
    if append_days is not None:
        if any(v is not None for v in (mode, users, order_items, seed, end)):
            raise click.UsageError(
                "--append-days continues the stored simulation; give no other settings"
            )
        try:
            result = simulator.append_days(con, append_days)
        except simulator.SimulationError as e:
            raise click.ClickException(str(e)) from e
    else:
        if users is not None and order_items is not None:
            raise click.UsageError("give --users or --order-items, not both")
        overrides: dict[str, object] = {}
        if mode is not None:
            overrides["mode"] = mode
        if seed is not None:
            overrides["seed"] = seed
        if end is not None:
            overrides["end"] = end.date()
        if users is not None:
            overrides["users"] = users
        if order_items is not None:
            overrides["users"] = simulator.users_for_order_items(
                order_items, mode or load_parameters()["simulation"]["mode"]
            )
        config = simulator.config_from_parameters(load_parameters(), **overrides)
        result = simulator.simulate(con, config)
    click.echo(result.describe())


@main.command()
@warehouse_option
def warehouse(warehouse_path: str | None) -> None:
    """Show what the warehouse's raw schema holds."""

    path = _warehouse(warehouse_path)
    if not path.exists():
        raise click.ClickException(
            f"no warehouse at {path}; run `nextbuy simulate` or `nextbuy load-thelook`"
        )
    _print_warehouse(path)


def _print_warehouse(path: Path) -> None:
    from thelook.warehouse import connect, summarize

    con = connect(path, read_only=True)
    click.echo(f"warehouse {path}")
    click.echo(f"  {'table':<22}{'rows':>12}  {'day partitions':<30}")
    for s in summarize(con):
        parts = (
            f"{s.partitions:,} ({s.first_partition} .. {s.last_partition})" if s.partitions else ""
        )
        click.echo(f"  raw.{s.table:<18}{s.rows:>12,}  {parts:<30}")
    con.close()


@main.command()
def demo() -> None:
    """The main job on the embedded default: simulate the default shop and show the warehouse."""
    from thelook import simulator
    from thelook.warehouse import connect

    path = current_environment().warehouse_path
    config = simulator.config_from_parameters(load_parameters())
    con = connect(path)
    click.echo(simulator.simulate(con, config).describe())
    con.close()
    _print_warehouse(path)


if __name__ == "__main__":
    sys.exit(main())
