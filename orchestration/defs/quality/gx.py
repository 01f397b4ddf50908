"""Great Expectations validation of a warehouse table against a suite in expectations/.

Kept whole: loading a suite, running it in the warehouse and reading GX's results back
are one job, and GX's result format is read nowhere else.

The suites are versioned JSON files (``expectations/<suite>.json``, GX 1.x
ExpectationSuite format). Settings that live in parameters.yaml (the sequence length, the
number of score deciles) enter a suite as GX suite parameters, ``{"$PARAMETER": "name"}``,
filled at validation time from `Parameters.suite_parameters`, so nothing is written twice.

Validation runs in the warehouse: GX's SQL execution engine turns every expectation into
aggregate queries on a query asset (``select * from <table>``); no table is
ever pulled into pandas. A suite may declare ``meta.derived_columns`` (name -> SQL
expression): they are appended to the batch's select list, so that measurements no
expectation computes by itself (how many items a ';'-joined sequence holds) can be checked
with the ordinary column expectations and suite parameters.

A view (customer_features was one until it became a table, and a suite may be declared on
any dbt model) is computed once per validation, not once per query: its batch is copied into a temporary table of GX's own connection
(one connection per engine, `StaticPool`; DuckDB keeps temporary tables in memory, so the
read-only file is not touched), the expectations query that, and the table is dropped at
the end. Tables are queried where they are. At 10M order items that took the
customer_features suite, on the view, from 20 s to 7 s, for 0.75 GiB more peak memory. (Fetching the
view into pandas instead took 18 s and twice the memory, and would change GX's engine,
and with it how some results are computed and reported.)

DuckDB through duckdb-engine needs one workaround: GX's SQL engine fails on it with
"IndexError: list index out of range" for every expectation (GX issues #10738 and #11579).
duckdb-engine's ``do_begin`` opens a transaction on checkout, and the rollback when the
connection returns to the pool closes DuckDB's pending result before GX has fetched it.
Validation only reads, so `ReadOnlyDuckDBDialect` makes begin and rollback no-ops; it is
registered with SQLAlchemy as ``duckdb+nextbuy`` (see `warehouse_url`), and the file is
opened read-only, so a validation can never write to the warehouse.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# GX reads this when a context is created; it must never phone home from a pipeline run.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import duckdb_engine
import great_expectations as gx
import sqlalchemy as sa
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from sqlalchemy.dialects import registry as sqlalchemy_dialects

from orchestration.environment import PROJECT_ROOT

EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
DIALECT_SCHEME = "duckdb+nextbuy"
# How many unexpected values a failure quotes (GX fetches them with a LIMIT query).
UNEXPECTED_SAMPLE_SIZE = 5
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": UNEXPECTED_SAMPLE_SIZE}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Keyword arguments that say where an expectation looks, not what it expects.
_DOMAIN_KWARGS = ("column", "column_A", "column_B", "column_list", "batch_id", "result_format")
# The columns of the failures table in a check's metadata, as `ExpectationFailure.as_record`.
FAILURE_COLUMNS = {
    "expectation": "The GX expectation type that failed.",
    "column": "The column(s) it looked at; empty for a table expectation.",
    "arguments": "Its arguments as validated, suite parameters filled in.",
    "observed": "What GX measured: the value, or the unexpected count, share and examples.",
}


class ReadOnlyDuckDBDialect(duckdb_engine.Dialect):
    """duckdb-engine without transactions, for read-only use by GX (module docstring)."""

    # SQLAlchemy wants every dialect class to state this itself; duckdb-engine's value.
    supports_statement_cache = False

    def do_begin(self, connection: Any) -> None:
        pass

    def do_rollback(self, connection: Any) -> None:
        pass


sqlalchemy_dialects.register("duckdb.nextbuy", __name__, "ReadOnlyDuckDBDialect")


@dataclass(frozen=True)
class ExpectationFailure:
    """One expectation that did not hold, with what was observed."""

    expectation_type: str
    # The column(s) it looked at, ", "-joined for column pairs and lists; None for table ones.
    column: str | None
    # Its other arguments as validated (suite parameters filled in), e.g. "min_value=0.01".
    kwargs: str
    observed_value: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    unexpected_sample: tuple[Any, ...] = ()
    # Set when GX could not evaluate the expectation at all (e.g. a missing column).
    error: str | None = None

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        args = f" ({self.kwargs})" if self.kwargs else ""
        return f"{self.expectation_type}{where}{args}: {self.detail()}"

    def detail(self) -> str:
        if self.error:
            return f"could not be evaluated: {self.error}"
        parts = []
        if self.observed_value is not None:
            parts.append(f"observed {_format(self.observed_value)}")
        if self.unexpected_count:
            percent = (
                f" ({self.unexpected_percent:.3g}%)" if self.unexpected_percent is not None else ""
            )
            sample = ", ".join(_format(v) for v in self.unexpected_sample)
            parts.append(
                f"{self.unexpected_count:,} unexpected values{percent}"
                + (f", e.g. {sample}" if sample else "")
            )
        # A column aggregate over no rows, or over NULLs only.
        return "; ".join(parts) or "observed no value (no rows, or only NULLs)"

    def as_record(self) -> dict[str, str]:
        """One row of the failures table (`FAILURE_COLUMNS`)."""
        return {
            "expectation": self.expectation_type,
            "column": self.column or "",
            "arguments": self.kwargs,
            "observed": self.detail(),
        }


@dataclass(frozen=True)
class ValidationOutcome:
    success: bool
    table: str
    suite: str
    evaluated: int
    failures: list[ExpectationFailure] = field(default_factory=list)

    def summary(self) -> str:
        """One line when everything passed; otherwise every failed expectation, one a line."""
        if self.success:
            return f"{self.table}: all {self.evaluated} expectations of suite {self.suite} passed."
        lines = [
            f"{self.table}: {len(self.failures)} of {self.evaluated} expectations of suite "
            f"{self.suite} failed:"
        ]
        lines += [f"- {failure.describe()}" for failure in self.failures]
        return "\n".join(lines)

    def as_metadata(self) -> dict[str, Any]:
        """Counts, and the failed expectations as a Dagster table (one row each, empty when
        all passed): what the asset check's page shows."""
        import dagster as dg

        return {
            "suite": f"expectations/{self.suite}.json",
            "table": self.table,
            "evaluated_expectations": self.evaluated,
            "failed_expectations": len(self.failures),
            "failures": dg.MetadataValue.table(
                records=[dg.TableRecord(failure.as_record()) for failure in self.failures],
                schema=dg.TableSchema(
                    columns=[
                        dg.TableColumn(name, "string", description=description)
                        for name, description in FAILURE_COLUMNS.items()
                    ]
                ),
            ),
        }


def suite_path(name: str, directory: Path = EXPECTATIONS_DIR) -> Path:
    return directory / f"{name}.json"


def load_suite(name: str, directory: Path = EXPECTATIONS_DIR) -> gx.ExpectationSuite:
    """The suite expectations/<name>.json; FileNotFoundError names the path when absent."""
    path = suite_path(name, directory)
    if not path.is_file():
        raise FileNotFoundError(f"expectation suite {name!r} not found: {path} does not exist")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    if config.get("name") != name:
        raise ValueError(f"{path}: the suite is named {config.get('name')!r}, not {name!r}")
    return gx.ExpectationSuite(**config)


def warehouse_url(path: Path) -> str:
    """SQLAlchemy URL of the DuckDB file through `ReadOnlyDuckDBDialect`."""
    return f"{DIALECT_SCHEME}:///{Path(path).resolve()}"


def validate_table(
    url: str,
    table: str,
    suite_name: str,
    parameters: Mapping[str, Any],
    *,
    relation: str | None = None,
    suites_dir: Path = EXPECTATIONS_DIR,
) -> ValidationOutcome:
    """Validate ``table`` (``schema.name``) against expectations/<suite_name>.json, with
    ``parameters`` filling the suite's parameters. ``relation`` is the table as the
    engine's SQL names it when that differs (BigQuery: `project.dataset.name`, see
    `Warehouse.relation`).

    LookupError when the table does not exist; FileNotFoundError when the suite or the
    warehouse file does not; ValueError when the suite needs a parameter not given.
    """
    _split_table(table)
    relation = relation or table
    schema, name = relation.strip("`").split(".")[-2:]
    duckdb = sa.engine.make_url(url).drivername.startswith("duckdb")
    suite = load_suite(suite_name, suites_dir)
    derived = _derived_columns(suite, suite_path(suite_name, suites_dir))
    missing = sorted(_parameter_names(suite) - set(parameters))
    if missing:
        raise ValueError(
            f"suite {suite_name} needs the suite parameter(s) {', '.join(missing)}, "
            f"which were not given (see Parameters.suite_parameters in orchestration/settings.py)"
        )
    _require_database_file(url)

    context = _ephemeral_context()
    if duckdb:
        datasource = context.data_sources.add_sql(
            name="warehouse",
            connection_string=url,
            # One connection per engine: a view's batch is a temporary table (module
            # docstring), which only the connection that made it can see.
            kwargs={"connect_args": {"read_only": True}, "poolclass": sa.pool.StaticPool},
        )
    else:
        # GX's BigQuery datasource: sqlalchemy-bigquery, with GX's own pooling for it.
        datasource = context.data_sources.add_bigquery(name="warehouse", connection_string=url)
    materialised: str | None = None
    try:
        engine = datasource.get_engine()
        table_type = _table_type(engine, schema, name)
        if table_type is None:
            raise LookupError(
                f"table {table} does not exist in the warehouse "
                f"({_database(url) if duckdb else relation.strip('`')}): "
                "build it before validating it"
            )
        # A derived column whose source column is missing would break the whole batch
        # query; left out, only its own expectations fail (and a schema expectation, or
        # the marts' dbt contract, names the missing column).
        derived = {k: v for k, v in derived.items() if _computes(engine, relation, v)}
        query = _batch_query(relation, derived)
        # BigQuery computes a view where it lives, in parallel; a copy would be billed.
        if table_type == "VIEW" and duckdb:
            materialised = _materialise(datasource.get_execution_engine().engine, query)
            query = f"select * from {materialised}"
        asset = datasource.add_query_asset(name=name, query=query)
        batch = asset.add_batch_definition_whole_table("whole").get_batch()
        result = batch.validate(
            suite, expectation_parameters=dict(parameters), result_format=RESULT_FORMAT
        )
    finally:
        execution_engine = datasource.get_execution_engine()
        if materialised is not None:
            # (Closing the connection below would drop it too; this frees its memory first.)
            with (
                contextlib.suppress(sa.exc.SQLAlchemyError),
                execution_engine.engine.connect() as connection,
            ):
                connection.execute(sa.text(f"drop table if exists {materialised}"))
        # Release the file now: a later step of the same process may open it for writing,
        # which DuckDB refuses while a read-only handle on it is still alive.
        execution_engine.close()
        datasource.get_engine().dispose()

    failures = [_failure(r) for r in result.results if not r.success]
    return ValidationOutcome(
        success=bool(result.success),
        table=table,
        suite=suite_name,
        evaluated=len(result.results),
        failures=sorted(failures, key=lambda f: (f.column or "", f.expectation_type)),
    )


def _ephemeral_context() -> Any:
    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _split_table(table: str) -> tuple[str, str]:
    parts = table.split(".")
    if len(parts) != 2 or not all(_IDENTIFIER.match(p) for p in parts):
        raise ValueError(f"table must be schema.name (plain identifiers), not {table!r}")
    return parts[0], parts[1]


def _derived_columns(suite: gx.ExpectationSuite, path: Path) -> dict[str, str]:
    derived = (suite.meta or {}).get("derived_columns", {})
    if not isinstance(derived, dict) or not all(
        isinstance(k, str) and _IDENTIFIER.match(k) and isinstance(v, str) and v.strip()
        for k, v in derived.items()
    ):
        raise ValueError(f"{path}: meta.derived_columns must map column names to SQL expressions")
    return derived


def _batch_query(table: str, derived: Mapping[str, str]) -> str:
    select = ", ".join(["*", *(f"({sql}) as {name}" for name, sql in derived.items())])
    return f"select {select} from {table}"


def _parameter_names(suite: gx.ExpectationSuite) -> set[str]:
    names: set[str] = set()
    for expectation in suite.expectations:
        for value in expectation.configuration.kwargs.values():
            if isinstance(value, dict) and "$PARAMETER" in value:
                names |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", value["$PARAMETER"]))
    # Arithmetic in a parameter expression may call GX's functions (round, trunc, ...).
    return names - {"round", "trunc", "abs", "sgn", "exp", "sin", "cos", "tan", "E", "PI"}


def _database(url: str) -> str:
    return sa.engine.make_url(url).database or ""


def _require_database_file(url: str) -> None:
    database = _database(url)
    is_duckdb_file = sa.engine.make_url(url).drivername.startswith("duckdb") and (
        database != ":memory:"
    )
    if is_duckdb_file and not Path(database).is_file():
        raise FileNotFoundError(f"warehouse file {database} does not exist")


def _table_type(engine: sa.Engine, schema: str, name: str) -> str | None:
    """ "VIEW" or "BASE TABLE", None when the table is absent: by SQLAlchemy's inspector,
    which asks each engine its own way (BigQuery has one INFORMATION_SCHEMA per dataset)."""
    inspector = sa.inspect(engine)
    if not inspector.has_table(name, schema=schema):
        return None
    return "VIEW" if name in inspector.get_view_names(schema=schema) else "BASE TABLE"


def _materialise(engine: sa.Engine, query: str) -> str:
    """Computes ``query`` once into a new temporary table of ``engine``'s one connection;
    returns the table's name."""
    temporary = f"gx_batch_{uuid.uuid4().hex[:12]}"
    with engine.connect() as connection:
        connection.execute(sa.text(f"create temporary table {temporary} as {query}"))
    return temporary


def _computes(engine: sa.Engine, table: str, expression: str) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f"select ({expression}) from {table} limit 0")).all()
    except sa.exc.DBAPIError:
        return False
    return True


def _failure(result: Any) -> ExpectationFailure:
    config = result.expectation_config
    kwargs = dict(config.kwargs)
    details = result.result or {}
    observed = details.get("observed_value")
    mismatched = (details.get("details") or {}).get("mismatched")
    if mismatched:
        # A schema expectation: what differs says more than the whole observed column list.
        # Extra columns are only a failure when the set must match exactly.
        ignored = {"unexpected"} if kwargs.get("exact_match") is False else set()
        observed = {k: v for k, v in mismatched.items() if v and k not in ignored}
    return ExpectationFailure(
        expectation_type=config.type,
        column=_columns(kwargs),
        kwargs=", ".join(f"{k}={_format(v)}" for k, v in kwargs.items() if k not in _DOMAIN_KWARGS),
        observed_value=observed,
        unexpected_count=details.get("unexpected_count"),
        unexpected_percent=details.get("unexpected_percent"),
        unexpected_sample=tuple(details.get("partial_unexpected_list") or ())[
            :UNEXPECTED_SAMPLE_SIZE
        ],
        error=_exception_message(result.exception_info),
    )


def _columns(kwargs: Mapping[str, Any]) -> str | None:
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs.get('column_B')}"
    if "column_list" in kwargs:
        return ", ".join(str(c) for c in kwargs["column_list"])
    return None


def _exception_message(info: Any) -> str | None:
    """GX reports an expectation's exception at the top level or per failed metric."""
    if not isinstance(info, Mapping):
        return None
    candidates: Iterable[Any] = [info] if "raised_exception" in info else info.values()
    messages = [
        str(entry.get("exception_message") or "").strip().splitlines()[0]
        for entry in candidates
        if isinstance(entry, Mapping) and entry.get("raised_exception")
    ]
    return "; ".join(dict.fromkeys(m for m in messages if m)) or None


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_format(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple | set):
        items = [_format(v) for v in value]
        if len(items) > 8:
            return "[" + ", ".join(items[:5]) + f", ... ({len(items)} in all)]"
        return "[" + ", ".join(items) + "]"
    return str(value)
