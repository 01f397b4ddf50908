"""How nextbuy runs dbt: the one home of the project's folder, profile target, process
environment, vars and manifest.

Kept whole: this module's promise is to be the one home of how dbt runs (resource,
environment, vars, manifest, metadata fetch); split, each part would need the others.

Every dbt invocation, whether a Dagster asset's `dbt build`, `nextbuy dbt ...`, the docs
or the parse that makes the manifest, goes through dagster-dbt's `DbtCliResource` made by
`dbt_resource` and the arguments made by `dbt_invocation`, so they all see the same vars,
warehouse and target.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from dagster_dbt import DbtCliResource, DbtProject
from packaging import version

from orchestration.environment import PROJECT_ROOT, TELEMETRY_OFF, Environment, current_environment

if TYPE_CHECKING:
    import dagster as dg
    from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation
    from dbt.adapters.base.impl import BaseAdapter

    from orchestration.settings import Parameters

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
# Models that follow the champion's scores; the feature build leaves them to scoring.
SCORING_SELECTOR = "tag:scoring"


class DbtError(RuntimeError):
    """A dbt command failed; the message carries dbt's own account."""


def dbt_env(
    env: Environment,
    warehouse: Path | None = None,
    as_of: Any = None,
    partitions: Sequence[str] | None = None,
    changed_only: bool = False,
) -> dict[str, str]:
    """Process environment for dbt: the warehouse, the target, the as-of date, the raw
    order_items partitions to process, whether data tests read only what changed
    (macros/scoped_tests.sql), telemetry off.

    dbt's artefacts and its log go beside the warehouse (all local state under one folder),
    and the as-of date travels as NEXTBUY_AS_OF rather than a var: it changes every day,
    and a changed var makes dbt re-parse the whole project, an env var only the files
    that read it. So do the partitions (NEXTBUY_PARTITIONS, comma separated) and
    NEXTBUY_CHANGED_ONLY: every invocation then passes the same vars (parameters.yaml's),
    and dbt parses only what changed since the last one (measured at 1M order items:
    about 10 s of every dbt step was a full re-parse while the vars alternated).
    """
    warehouse = (warehouse or env.warehouse_path).resolve()
    out = dict(os.environ)
    out.update(TELEMETRY_OFF)
    out["NEXTBUY_WAREHOUSE"] = str(warehouse)
    # profiles.yml's default target, for dbt run without --target (sqlfluff's templater).
    out["NEXTBUY_DBT_TARGET"] = env.dbt_target
    out.setdefault("DBT_TARGET_PATH", str(warehouse.parent / "dbt" / "target"))
    # dbt.log beside the artefacts, where dagster-dbt puts it for the runs it starts.
    out.setdefault("DBT_LOG_PATH", out["DBT_TARGET_PATH"])
    if as_of is not None:
        out["NEXTBUY_AS_OF"] = str(as_of)
    out.pop("NEXTBUY_PARTITIONS", None)
    if partitions is not None:
        out["NEXTBUY_PARTITIONS"] = ",".join(partitions)
    out["NEXTBUY_CHANGED_ONLY"] = "true" if changed_only else "false"
    return out


def dbt_target_path(env: Environment, warehouse: Path | None = None) -> Path:
    """Where dbt writes its artefacts (the docs site too) for ``warehouse``."""
    return Path(dbt_env(env, warehouse=warehouse)["DBT_TARGET_PATH"])


def dbt_executable() -> str:
    """The dbt of this interpreter's environment, whatever PATH says."""
    return str(Path(sys.executable).parent / "dbt")


def manifest_folder(env: Environment) -> Path:
    """Where the manifest the Dagster definitions load lives: a folder of its own inside
    the target, which every dbt build and `dbt docs generate` rewrite in place. A code
    location (re)loading while a build runs, or test workers importing the definitions
    at once, then never read a half-written manifest.json."""
    return dbt_target_path(env) / "manifest"


def dbt_project(env: Environment | None = None) -> DbtProject:
    env = env or current_environment()
    return DbtProject(
        project_dir=DBT_PROJECT_DIR,
        target_path=manifest_folder(env),
        profiles_dir=DBT_PROJECT_DIR,
        target=env.dbt_target,
    )


class LocalDbtCliResource(DbtCliResource):
    """dagster-dbt's resource for the dbt of this interpreter's environment
    (``dbt_executable()``). dagster-dbt learns the executable's version by running
    `dbt --version` once per resource instance, that is once per dbt step: 5.5 s of dbt's
    start-up on this machine, for a version the installed dbt-core package states.

    ``fetch_metadata`` says whether an invocation opens dagster-dbt's in-process dbt
    adapter, which serves only the row counts and column types of built models
    (``asset_events``). Opening it parses every macro of the project again, 3-5 s per
    invocation on this machine, so invocations outside a Dagster step (`nextbuy dbt`,
    parses, tests) and DuckDB builds, whose metadata asset_events reads itself, go
    without (so dbt-duckdb's adapter, which keeps its database open for the life of the
    process, is never opened in a nextbuy process)."""

    fetch_metadata: bool = True

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> BaseAdapter:
        if not self.fetch_metadata:
            # dagster-dbt hands the adapter on as optional; without one it fetches nothing.
            return cast("BaseAdapter", None)
        with _macros_parsed_once_per_process():
            return super()._initialize_dbt_core_adapter(args)


# The macros dagster-dbt's adapter parses, by project folder, adapter type and the newest
# change of the project's macro files.
_MACROS: dict[tuple[str, str, float], Any] = {}


@contextmanager
def _macros_parsed_once_per_process() -> Iterator[None]:
    """dagster-dbt opens its adapter afresh for every dbt step, and with it parses the
    macros of dbt, dbt-duckdb and the project (about 600, 1-3 s here) although they are the
    same every time within a process. Keep the first parse (dbt's ManifestLoader.load_macros
    only reads files and does not call its hook), keyed so that an edited macro is parsed
    again."""
    from dbt.parser.manifest import ManifestLoader

    original = ManifestLoader.__dict__["load_macros"]

    def load_macros(
        cls: type[ManifestLoader], root_config: Any, macro_hook: Any, base_macros_only: bool = False
    ) -> Any:
        macros = Path(root_config.project_root) / "macros"
        newest = max((f.stat().st_mtime for f in macros.rglob("*.sql")), default=0.0)
        key = (str(root_config.project_root), str(root_config.credentials.type), newest)
        if base_macros_only and key in _MACROS:
            return _MACROS[key]
        manifest = original.__func__(cls, root_config, macro_hook, base_macros_only)
        if base_macros_only:
            _MACROS[key] = manifest
        return manifest

    ManifestLoader.load_macros = classmethod(load_macros)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        ManifestLoader.load_macros = original  # type: ignore[method-assign]


def dbt_resource(
    env: Environment | None = None, fetch_metadata: bool | None = None
) -> DbtCliResource:
    """The dbt CLI resource of this environment (the Dagster resource named `dbt`).
    ``fetch_metadata`` says whether it opens dagster-dbt's in-process adapter to fetch the
    built models' row counts and column types: by default only on BigQuery, since on a
    DuckDB warehouse asset_events reads them itself with one connection;
    ``fetch_metadata=False`` for invocations whose models' metadata nobody reads."""
    env = env or current_environment()
    if fetch_metadata is None:
        fetch_metadata = env.dbt_target == "bigquery"
    return LocalDbtCliResource(
        project_dir=dbt_project(env),
        dbt_executable=dbt_executable(),
        target=env.dbt_target,
        fetch_metadata=fetch_metadata,
    )


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """dagster-dbt hands this process's environment to dbt; set ours around the call."""
    previous = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(previous)


def dbt_invocation(
    dbt: DbtCliResource,
    args: Sequence[str],
    *,
    params: Parameters | None,
    warehouse: Path | None = None,
    as_of: Any = None,
    partitions: Sequence[str] | None = None,
    changed_only: bool = False,
    vars: Mapping[str, Any] | None = None,
    context: dg.AssetExecutionContext | None = None,
    raise_on_error: bool = True,
) -> DbtCliInvocation:
    """Start `dbt <args>` with parameters.yaml's vars (and ``vars``) on ``warehouse``;
    ``as_of``, ``partitions`` and ``changed_only`` travel as environment variables
    (dbt_env).

    ``params=None`` runs without vars (`dbt docs serve`, which renders nothing).
    """
    import dagster_dbt.core.dbt_cli_invocation

    from orchestration.children import die_with_this_process

    # A killed nextbuy must not leave dbt running alone, holding the warehouse.
    die_with_this_process(dagster_dbt.core.dbt_cli_invocation)
    env = current_environment()
    process_env = dbt_env(env, warehouse, as_of, partitions, changed_only)
    full_args = list(args)
    if params is not None:
        full_args += ["--vars", json.dumps(params.dbt_vars(**(vars or {})), default=str)]
    with _environ(process_env):
        return dbt.cli(
            full_args,
            context=context,
            target_path=Path(process_env["DBT_TARGET_PATH"]),
            raise_on_error=raise_on_error,
        )


def asset_events(invocation: DbtCliInvocation, duckdb: Path | None = None) -> Iterator[Any]:
    """The Dagster events of a dbt build, each model's with its row count and column
    types; the events come once dbt has exited (dagster-dbt's stream ends by waiting for
    its process), so a step may read the warehouse while handling them. A failed build
    yields the events of what it did build, then raises.

    ``duckdb``, the warehouse file of a DuckDB build: the metadata of every model built is
    read with one connection and two queries once dbt has exited (duckdb_metadata).
    Otherwise (BigQuery) dagster-dbt fetches it through its in-process dbt adapter, a
    connection and a query per model; on DuckDB that cost 4-5 s per dbt step on a 3 GB
    file (opening the adapter, which parses every macro, and a connection per model).
    Views get no row count either way: their SQL would run again."""
    events: list[Any] = []
    failure: BaseException | None = None
    # dagster-dbt's fetchers `pushd` into the dbt project from several threads at once,
    # which can leave the process in the wrong folder (and a relative NEXTBUY_HOME with it).
    cwd = os.getcwd()
    stream = invocation.stream()
    if duckdb is None:
        stream = stream.fetch_row_counts().fetch_column_metadata(with_column_lineage=False)
    try:
        for event in stream:
            events.append(event)
    except BaseException as e:
        failure = e
    finally:
        os.chdir(cwd)
    if duckdb is not None:
        events = duckdb_metadata(events, invocation.manifest, duckdb)
    yield from events
    if failure is not None:
        raise failure


def duckdb_metadata(events: list[Any], manifest: Mapping[str, Any], path: Path) -> list[Any]:
    """``events`` with the row count (tables) and the column names and types (tables and
    views) of each dbt model they materialise, as dagster-dbt's fetchers attach them
    (dagster/row_count, dagster/column_schema), read from the DuckDB file ``path`` in one
    read-only connection. Metadata that cannot be read is left out with a warning, as
    dagster-dbt does: it describes the build, it is not the build."""
    import dagster as dg

    from thelook.field_types import ident
    from thelook.warehouse import connect

    nodes: dict[int, Mapping[str, Any]] = {}
    for i, event in enumerate(events):
        if not isinstance(event, dg.Output | dg.AssetMaterialization):
            continue
        unique_id = event.metadata.get("unique_id")
        node = manifest["nodes"].get(getattr(unique_id, "value", unique_id))
        if node is not None and node["resource_type"] in ("model", "snapshot", "seed"):
            nodes[i] = node
    if not nodes:
        return events
    relations = sorted({(n["schema"], n["alias"]) for n in nodes.values()})
    tables = sorted(
        {(n["schema"], n["alias"]) for n in nodes.values() if n["config"]["materialized"] != "view"}
    )
    try:
        with connect(path, read_only=True) as con:
            wanted = " or ".join("(schema_name = ? and table_name = ?)" for _ in relations)
            columns: dict[tuple[str, str], list[dg.TableColumn]] = {}
            for schema, table, column, data_type in con.execute(
                f"""select schema_name, table_name, column_name, data_type
                    from duckdb_columns() where {wanted}
                    order by schema_name, table_name, column_index""",
                [part for relation in relations for part in relation],
            ).fetchall():
                columns.setdefault((schema, table), []).append(dg.TableColumn(column, data_type))
            counts: dict[tuple[str, str], int] = {}
            if tables:
                counted = " union all ".join(
                    f"select {i} as relation, count(*) as row_count from "
                    f"{ident(schema)}.{ident(table)}"
                    for i, (schema, table) in enumerate(tables)
                )
                for i, row_count in con.execute(counted).fetchall():
                    counts[tables[i]] = int(row_count)
    except Exception as e:  # the build stands without its metadata
        import logging

        logging.getLogger(__name__).warning(
            "could not read the row counts and column types of the dbt models just built "
            f"from {path}: {e}"
        )
        return events
    out = list(events)
    for i, node in nodes.items():
        relation = (node["schema"], node["alias"])
        extra: dict[str, Any] = {}
        if relation in columns:
            extra["dagster/column_schema"] = dg.TableSchema(columns=columns[relation])
        if relation in counts:
            extra["dagster/row_count"] = counts[relation]
            extra["dagster/storage_kind"] = "duckdb"
        if extra:
            out[i] = out[i].with_metadata({**out[i].metadata, **extra})
    return out


@dataclass(frozen=True)
class DbtRun:
    returncode: int
    # dbt's log messages, one a line, as dbt prints them.
    stdout: str


def run_dbt(
    args: Sequence[str],
    *,
    warehouse: Path | None = None,
    vars: Mapping[str, Any] | None = None,
    params: Parameters | None = None,
    with_vars: bool = True,
    changed_only: bool = False,
    check: bool = True,
) -> DbtRun:
    """Run `dbt <args>` outside a Dagster run (the `nextbuy dbt` command, tests), echoing
    dbt's lines to stdout; ``vars`` may hold ``as_of``, which travels as NEXTBUY_AS_OF,
    and ``changed_only`` travels as the orchestration passes it (dbt_env)."""
    from orchestration.settings import load_parameters

    extra = dict(vars or {})
    as_of = extra.pop("as_of", None)
    invocation = dbt_invocation(
        dbt_resource(fetch_metadata=False),
        args,
        params=(params or load_parameters()) if with_vars else None,
        warehouse=warehouse,
        as_of=as_of,
        changed_only=changed_only,
        vars=extra,
        raise_on_error=False,
    )
    lines = [str(event) for event in invocation.stream_raw_events()]
    returncode = invocation.process.wait()
    result = DbtRun(returncode=returncode, stdout="\n".join(lines))
    if check and returncode != 0:
        raise DbtError(f"dbt {' '.join(args)} failed:\n" + "\n".join(lines[-40:]))
    return result


def _newest_source_change() -> float:
    files = [DBT_PROJECT_DIR / "dbt_project.yml", *DBT_PROJECT_DIR.rglob("*.sql")]
    files += [*DBT_PROJECT_DIR.rglob("*.yml"), *DBT_PROJECT_DIR.rglob("*.md")]
    return max(f.stat().st_mtime for f in files if "target" not in f.parts)


def _is_fresh(manifest: Path) -> bool:
    return manifest.exists() and manifest.stat().st_mtime >= _newest_source_change()


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One process at a time across the machine (an flock, released when the file closes,
    also when the process dies)."""
    import fcntl

    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def prepare_manifest(env: Environment | None = None) -> Path:
    """manifest.json for the current sources, parsing only when it is missing or stale.

    Several processes may ask at once (the webserver and the daemon loading the code
    location, pytest's workers importing the definitions): one parses under a lock while
    the others wait, and the parse writes into a scratch target whose manifest then
    replaces the old one in a single rename, so no reader ever sees a partial file.
    """
    import shutil
    import tempfile

    env = env or current_environment()
    folder = manifest_folder(env)
    manifest = folder / "manifest.json"
    if _is_fresh(manifest):
        return manifest
    folder.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder.parent / "manifest.lock"):
        if _is_fresh(manifest):  # parsed by another process while this one waited
            return manifest
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix="parse-") as scratch:
            written = Path(scratch)
            # dbt's partial parse state from the last parse: it re-reads only what changed.
            previous_state = folder / "partial_parse.msgpack"
            if previous_state.exists():
                shutil.copy2(previous_state, written)
            with _environ({"DBT_TARGET_PATH": scratch, "DBT_LOG_PATH": scratch}):
                run_dbt(["parse", "--quiet"])
            if not (written / "manifest.json").exists():
                raise FileNotFoundError(f"dbt parse did not write {written / 'manifest.json'}")
            if (written / "partial_parse.msgpack").exists():
                os.replace(written / "partial_parse.msgpack", previous_state)
            os.replace(written / "manifest.json", manifest)
    return manifest


def lint_sql(paths: Sequence[str] | None = None) -> list[str]:
    """sqlfluff with the dbt templater over the project; returns the violations.

    The templater renders models as dbt would, so it needs the same vars; they come from
    parameters.yaml here rather than being copied into .sqlfluff.
    """
    import tempfile

    from sqlfluff.core import FluffConfig, Linter
    from sqlfluff.core.config import load_config_up_to_path

    from orchestration.settings import load_parameters
    from thelook.warehouse import connect

    # Models and singular tests; generic tests and macros are Jinja, not SQL.
    paths = paths or [
        "models",
        *(f"tests/{p.name}" for p in (DBT_PROJECT_DIR / "tests").glob("*.sql")),
    ]
    configs = load_config_up_to_path(str(DBT_PROJECT_DIR / "models"))
    configs.setdefault("templater", {}).setdefault("dbt", {})["context"] = (
        load_parameters().dbt_vars()
    )
    previous_dir = Path.cwd()
    # Rendering opens the warehouse; an empty one of our own keeps linting independent
    # of whatever state the developer has.
    with tempfile.TemporaryDirectory() as scratch:
        warehouse = Path(scratch) / "lint.duckdb"
        connect(warehouse).close()
        with _environ(dbt_env(current_environment(), warehouse)):
            os.chdir(DBT_PROJECT_DIR)
            try:
                result = Linter(config=FluffConfig(configs=configs)).lint_paths(tuple(paths))
            finally:
                os.chdir(previous_dir)
    return [
        f"{record['filepath']}:{v['start_line_no']}: {v['code']} {v['description']}"
        for record in result.as_records()
        for v in record["violations"]
    ]
