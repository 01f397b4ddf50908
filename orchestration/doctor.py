"""`nextbuy doctor`: what state a NEXTBUY_HOME is in, and the command that repairs each
problem.

Read-only: the warehouse is opened read-only, the Dagster instance and the MLflow store
only when they exist already (opening a missing one would create it), and nothing is
written; the champion's model is loaded into a temporary folder.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb

from orchestration.environment import Environment

# Suffixes of relations a build or a scoring run leaves only when it stopped half-way:
# dbt's intermediate and backup relations, the scores staged before publication.
LEFTOVER_SUFFIXES = ("__dbt_tmp", "__dbt_backup", "__staged")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str
    # The command that repairs it ("" when ok).
    repair: str = ""

    def lines(self) -> list[str]:
        head = f"{'ok' if self.ok else 'PROBLEM':8} {self.name}: {self.message}"
        return [head] + ([f"{'':8} repair: {self.repair}"] if self.repair else [])

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def diagnose(env: Environment) -> list[Check]:
    """Every check of ``env``'s home, in the order a repair would go."""
    warehouse = env.warehouse_path
    opened = check_warehouse(warehouse)
    checks = [opened]
    if opened.ok:
        with _read_only(warehouse) as con:
            checks.append(check_leftovers(con, warehouse))
        checks.append(check_partitions(env))
        checks.append(check_fingerprint(warehouse))
    checks += [check_dagster_runs(env), *check_mlflow(env)]
    return checks


@contextmanager
def _read_only(warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    from thelook.warehouse import connect

    con = connect(warehouse, read_only=True)
    try:
        yield con
    finally:
        con.close()


def check_warehouse(warehouse: Path) -> Check:
    name = "warehouse"
    if not warehouse.exists():
        return Check(
            name,
            False,
            f"no warehouse at {warehouse}",
            "nextbuy simulate (or nextbuy load-thelook <export folder>), then nextbuy pipeline",
        )
    try:
        with _read_only(warehouse):
            pass
    except duckdb.Error as e:
        if "lock" in str(e).lower():
            return Check(
                name,
                False,
                f"{warehouse} is held by another process ({e})",
                "let the running nextbuy or dagster command finish, then nextbuy doctor again",
            )
        return Check(
            name,
            False,
            f"{warehouse} does not open ({e})",
            f"mv {shlex.quote(str(warehouse))} {shlex.quote(str(warehouse))}.broken && "
            "nextbuy simulate (or nextbuy load-thelook <export folder>) && "
            "nextbuy pipeline --full-refresh",
        )
    return Check(name, True, f"{warehouse} opens (read-only)")


def check_leftovers(con: duckdb.DuckDBPyConnection, warehouse: Path) -> Check:
    """Relations a build or scoring run left when it stopped half-way."""
    rows = con.execute(
        "select table_schema, table_name, table_type from information_schema.tables "
        "where table_catalog = current_database() order by all"
    ).fetchall()
    left = [(s, t, kind) for s, t, kind in rows if t.endswith(LEFTOVER_SUFFIXES)]
    name = "leftover tables"
    if not left:
        return Check(name, True, "no half-built (__dbt_tmp, __dbt_backup) or staged tables")
    drops = "; ".join(
        f'drop {"view" if kind == "VIEW" else "table"} if exists "{s}"."{t}"' for s, t, kind in left
    )
    script = f"import duckdb; duckdb.connect({str(warehouse)!r}).execute({drops!r})"
    return Check(
        name,
        False,
        f"{len(left)} left by an interrupted run in {warehouse}: "
        + ", ".join(f"{s}.{t}" for s, t, _ in left),
        f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}",
    )


def check_fingerprint(warehouse: Path) -> Check:
    """The marts were built with the settings and SQL there are now."""
    from orchestration.fingerprint import FINGERPRINT_TABLE, current_fingerprint, stale_reason
    from orchestration.resources import WarehouseResource
    from orchestration.settings import ParametersError, load_parameters, parameters_path

    name = "settings fingerprint"
    try:
        current = current_fingerprint(load_parameters())
    except ParametersError as e:
        return Check(name, False, str(e), f"fix the setting it names in {parameters_path()}")
    reason = stale_reason(WarehouseResource(path=str(warehouse)), current)
    if reason is None:
        return Check(
            name,
            True,
            f"the marts match {parameters_path().name} and the dbt SQL ({FINGERPRINT_TABLE})",
        )
    return Check(
        name,
        False,
        f"{reason}; the next nextbuy features rebuilds them from all partitions itself",
        "nextbuy features --full-refresh",
    )


def check_partitions(env: Environment) -> Check:
    """Every raw order_items partition was processed by a successful feature build, and
    none it processed was removed from raw since (orchestration/removals.py)."""
    from orchestration.partitions import changed_partitions, processed_state, read_partitions
    from orchestration.removals import removal_reason

    name = "marts vs raw"
    present = read_partitions(env.warehouse_path)
    if not present:
        return Check(
            name,
            False,
            "raw.order_items has no day partition",
            "nextbuy simulate (or nextbuy load-thelook <export folder>)",
        )
    inst = _existing_instance(env)
    state = processed_state(inst) if inst is not None else {}
    if inst is not None:
        inst.dispose()
    changed = changed_partitions(present, state)
    lost = removal_reason(env.warehouse_path, state)
    if lost:
        return Check(
            name,
            False,
            f"{lost}: the marts may still hold its rows; the next nextbuy features rebuilds "
            "them from all partitions itself",
            "nextbuy features",
        )
    if not changed:
        return Check(name, True, f"all {len(present)} day partitions of raw.order_items processed")
    ids = [p.partition_id for p in changed]
    shown = ids[0] if len(ids) == 1 else f"{ids[0]}..{ids[-1]}"
    what = "never built" if not state else "new or changed since the last feature build"
    return Check(
        name,
        False,
        f"{len(ids)} day partition(s) of raw.order_items {what} ({shown})",
        "nextbuy features",
    )


def _existing_instance(env: Environment) -> Any:
    """The home's Dagster instance, None when it has none (opening creates one)."""
    import dagster as dg

    home = env.home / "dagster"
    if not (home / "dagster.yaml").exists():
        return None
    return dg.DagsterInstance.from_config(str(home))


def check_dagster_runs(env: Environment) -> Check:
    """Runs recorded as started that no process is finishing any more."""
    import dagster as dg

    name = "dagster runs"
    inst = _existing_instance(env)
    if inst is None:
        return Check(name, True, "no Dagster runs recorded yet")
    try:
        statuses = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
        runs = inst.get_runs(filters=dg.RunsFilter(statuses=statuses))
    finally:
        inst.dispose()
    if not runs:
        return Check(name, True, "no run left STARTED")
    return _dangling(name, "Dagster", [f"{r.job_name} {r.run_id}" for r in runs])


def _dangling(name: str, store: str, runs: list[str]) -> Check:
    return Check(
        name,
        False,
        f"{len(runs)} {store} run(s) still marked running, left by a process that ended "
        f"abruptly (unless a nextbuy run is in progress now): {', '.join(runs)}",
        "none needed: the next nextbuy run closes them",
    )


def check_mlflow(env: Environment) -> list[Check]:
    """Dangling MLflow runs, and the champion alias: it resolves to a version whose
    model loads."""
    import os

    from orchestration.settings import ParametersError, load_parameters

    local = env.home / "mlflow" / "mlflow.db"
    if not os.environ.get("MLFLOW_TRACKING_URI") and not local.exists():
        return [
            Check("mlflow runs", True, "no MLflow store yet"),
            Check(
                "champion",
                False,
                f"no MLflow store at {local}: nothing can score",
                "nextbuy pipeline",
            ),
        ]
    try:
        registry_settings = load_parameters().registry
    except ParametersError as e:
        return [Check("champion", False, str(e), "fix the setting it names")]
    from orchestration.mlflow_store import configure_mlflow, tracking_uri
    from orchestration.registry import Registry

    uri = tracking_uri(env)
    configure_mlflow(uri)
    registry = Registry(
        uri, model_name=registry_settings.model_name, alias=registry_settings.champion_alias
    )
    return [check_mlflow_runs(registry), check_champion(registry, uri)]


def check_mlflow_runs(registry: Any) -> Check:
    from mlflow.entities import ViewType

    name = "mlflow runs"
    experiments = registry.client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
    runs = (
        registry.client.search_runs(
            [e.experiment_id for e in experiments], "attributes.status = 'RUNNING'"
        )
        if experiments
        else []
    )
    if not runs:
        return Check(name, True, "no run left RUNNING")
    return _dangling(
        name, "MLflow", [f"{r.info.run_name or ''} {r.info.run_id}".strip() for r in runs]
    )


def check_champion(registry: Any, uri: str) -> Check:
    from orchestration.registry import RegistryError

    name = "champion"
    alias = f"{registry.model_name}@{registry.alias}"
    try:
        ref = registry.champion()
    except RegistryError as e:
        drop = (
            f"from mlflow import MlflowClient; MlflowClient({uri!r}, {uri!r})"
            f".delete_registered_model_alias({registry.model_name!r}, {registry.alias!r})"
        )
        return Check(
            name,
            False,
            f"{alias} points at a version that does not exist ({e})",
            f"{shlex.quote(sys.executable)} -c {shlex.quote(drop)} && nextbuy retrain",
        )
    if ref is None:
        return Check(name, False, f"{alias} is not set: nothing can score", "nextbuy pipeline")
    loaded = _attempt(lambda: registry.load_scorer(ref))
    if loaded:
        return Check(
            name,
            False,
            f"{alias} is {ref.label()}, whose model does not load ({loaded})",
            "nextbuy rollback (to the previous champion), or nextbuy retrain",
        )
    return Check(name, True, f"{alias} is {ref.label()}; its model loads")


def _attempt(action: Callable[[], Any]) -> str:
    """ "" when ``action`` succeeds, else what went wrong."""
    try:
        action()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return ""
