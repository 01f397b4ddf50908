"""The dbt project's compiled SQL of customer_features: the one definition of the features,
as online scoring runs it.

Kept whole: the compile and the checks on what it produced are one guarantee; apart,
neither says why the SQL may be run outside dbt.

nextbuy has one definition of a customer's features: the macro `purchase_features` in
the chain staging -> intermediate -> `customer_features`. Online scoring does not write it
again. At start-up ``compile_features`` has dbt compile that chain (``dbt compile`` through
orchestration.dbt.run_dbt, the one way dbt runs) and keeps, from the manifest, each
model's compiled SQL and its fully qualified relation name. ``FeatureEngine``
(serving/features.py) then runs
those statements unchanged on an in-process, in-memory DuckDB whose catalogue is named
like the compiled database (``ATTACH ':memory:' AS "warehouse"``), so every relation
the SQL names resolves to a table holding only the rows of the request.

Why this is exactly the batch definition:

- the SQL is dbt's rendering of the same models, macros and vars (parameters.yaml's,
  passed by run_dbt as for every batch invocation), for the same adapter (DuckDB);
- it is compiled against an empty scratch warehouse, so every incremental model renders
  its full-build SQL: what a full refresh runs, and what the project's tests hold the
  incremental builds equal to;
- the as-of date is the only thing that varies. dbt renders it in one place, the macro
  `as_of_timestamp` (macros/campaign.sql), as ``cast('<date>' as timestamp)``. The chain
  is compiled with a sentinel date that must occur in no other compiled text (checked),
  and the sentinel's quoted literal is replaced by the bound parameter ``$as_of``: the
  statement is then the text dbt renders for any date, with the date bound as the same
  string the literal held (tests/serving/test_features.py holds the served SQL equal,
  byte for byte, to what the batch's own build compiled for its date);
- every model partitions by customer and joins by order and product id, so the rows of one
  customer give that customer's rows of the full build. The catalogue is shared: the
  engine holds the warehouse's whole raw.products, and models that read only the catalogue
  (stg_thelook__products) are computed once per engine, from that same SQL;
- the mart's enforced contract (its column types) is applied as dbt applies it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestration.environment import Environment, current_environment
from thelook.schema import META_SCHEMA, RAW_SCHEMA

# The model whose SQL the chain ends in, and the raw tables a request fills.
FEATURES_MODEL = "customer_features"
HISTORY_TABLES = ("users", "orders", "order_items")
CATALOGUE_TABLE = "products"

# The as-of date the chain is compiled for: far from any real date, and checked to occur
# nowhere in the compiled SQL but where `as_of_timestamp` put it.
SENTINEL_AS_OF = "2999-12-31"
AS_OF_PARAMETER = "$as_of"

# Bumped when what a cached compile holds changes shape.
_CACHE_FORMAT = 1
_PROJECT_SUFFIXES = (".sql", ".yml", ".yaml", ".md")
_LINE_COMMENT = re.compile(r"^\s*--.*$", re.MULTILINE)


class FeatureCompileError(RuntimeError):
    """The dbt project did not compile into SQL the engine can run as the batch does."""


@dataclass(frozen=True)
class CompiledModel:
    """One model of the chain: its relation and its compiled select."""

    name: str
    relation: str
    schema: str
    sql: str
    # "table": computed once per engine (it reads only the shared catalogue);
    # "view": computed per request, from the request's rows.
    materialized: str


@dataclass(frozen=True)
class CompiledFeatures:
    """The compiled chain staging -> intermediate -> customer_features, ready to run."""

    database: str
    # Every model customer_features reads, dependencies first.
    models: tuple[CompiledModel, ...]
    # customer_features' select under its contract, the as-of date as $as_of.
    final_sql: str
    # customer_features' columns and contract types, in order.
    columns: tuple[tuple[str, str], ...]
    # The raw relations the chain reads, as (schema, table).
    sources: tuple[tuple[str, str], ...]
    dbt_version: str
    dbt_vars: Mapping[str, Any]
    # Identifies the project sources, vars and versions this was compiled from.
    key: str

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def to_json(self) -> str:
        document = {
            "format": _CACHE_FORMAT,
            "database": self.database,
            "models": [vars(model) for model in self.models],
            "final_sql": self.final_sql,
            "columns": [list(column) for column in self.columns],
            "sources": [list(source) for source in self.sources],
            "dbt_version": self.dbt_version,
            "dbt_vars": dict(self.dbt_vars),
            "key": self.key,
        }
        return json.dumps(document, indent=1, default=str)

    @classmethod
    def from_json(cls, text: str) -> CompiledFeatures:
        document = json.loads(text)
        if document.get("format") != _CACHE_FORMAT:
            raise ValueError("compiled features of another format")
        return cls(
            database=document["database"],
            models=tuple(CompiledModel(**model) for model in document["models"]),
            final_sql=document["final_sql"],
            columns=tuple((str(n), str(t)) for n, t in document["columns"]),
            sources=tuple((str(s), str(t)) for s, t in document["sources"]),
            dbt_version=document["dbt_version"],
            dbt_vars=document["dbt_vars"],
            key=document["key"],
        )


def compile_features(
    env: Environment | None = None,
    dbt_vars: Mapping[str, Any] | None = None,
    *,
    cache_dir: Path | None = None,
) -> CompiledFeatures:
    """dbt's compiled SQL of customer_features and everything it reads, for DuckDB.

    ``dbt_vars`` are parameters.yaml's (``Parameters.dbt_vars()``, the default). A compile
    is kept in ``cache_dir`` (default ``$NEXTBUY_HOME/serving/compiled``) under a key of
    the project's sources, the vars and the dbt versions, so a restart with nothing
    changed does not run dbt again; ``cache_dir=None`` with a fresh key always compiles.
    """
    from orchestration.dbt import DBT_PROJECT_DIR, run_dbt
    from orchestration.settings import load_parameters
    from thelook.warehouse import connect

    env = env or current_environment()
    if env.dbt_target != "local":
        raise FeatureCompileError(
            f"online scoring computes features on DuckDB; the {env.name} environment builds "
            f"with dbt target {env.dbt_target!r}, which serving does not support yet"
        )
    params = load_parameters()
    dbt_vars = dict(dbt_vars if dbt_vars is not None else params.dbt_vars())
    key = compile_key(DBT_PROJECT_DIR, dbt_vars)
    cache_dir = cache_dir or env.home / "serving" / "compiled"
    cached = cache_dir / f"{key}.json"
    if cached.exists():
        try:
            return CompiledFeatures.from_json(cached.read_text(encoding="utf-8"))
        except (ValueError, KeyError, TypeError):
            cached.unlink(missing_ok=True)
    scratch_root = env.home / "serving"
    scratch_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dbt-compile-", dir=scratch_root) as scratch:
        # An empty warehouse: no incremental model exists in it, so each renders its
        # full build, and nothing the pipeline holds (its warehouse, its target/ and
        # manifest) is read or written.
        warehouse = Path(scratch) / "warehouse.duckdb"
        connect(warehouse).close()
        target = Path(scratch) / "target"
        run_dbt(
            [
                "compile",
                "--quiet",
                "--select",
                f"+{FEATURES_MODEL},resource_type:model",
                "--target-path",
                str(target),
                "--log-path",
                str(target),
            ],
            warehouse=warehouse,
            vars={**{k: v for k, v in dbt_vars.items() if k != "as_of"}, "as_of": SENTINEL_AS_OF},
            params=params,
        )
        manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    compiled = from_manifest(manifest, dbt_vars=dbt_vars, key=key)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(compiled.to_json(), encoding="utf-8")
    partial.replace(cached)
    return compiled


def compile_key(project_dir: Path, dbt_vars: Mapping[str, Any]) -> str:
    """A digest of what the compiled SQL depends on: every source file of the project,
    the vars, the dbt versions and the sentinel."""
    digest = hashlib.sha256()
    files = sorted(
        path
        for path in project_dir.rglob("*")
        if path.is_file()
        and path.suffix in _PROJECT_SUFFIXES
        and not {"target", "dbt_packages", "logs"} & set(path.relative_to(project_dir).parts)
    )
    for path in files:
        digest.update(str(path.relative_to(project_dir)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    versions = {
        package: importlib.metadata.version(package) for package in ("dbt-core", "dbt-duckdb")
    }
    digest.update(json.dumps([dict(dbt_vars), versions, SENTINEL_AS_OF], default=str).encode())
    digest.update(str(_CACHE_FORMAT).encode())
    return digest.hexdigest()[:24]


def from_manifest(
    manifest: Mapping[str, Any], *, dbt_vars: Mapping[str, Any], key: str
) -> CompiledFeatures:
    """The chain's compiled SQL out of a manifest written by ``dbt compile``."""
    nodes = {
        uid: node
        for uid, node in manifest["nodes"].items()
        if node.get("resource_type") == "model" and node.get("compiled_code")
    }
    finals = [uid for uid, node in nodes.items() if node["name"] == FEATURES_MODEL]
    if len(finals) != 1:
        raise FeatureCompileError(f"the manifest holds no compiled {FEATURES_MODEL}")
    sources = {
        uid: node["relation_name"]
        for uid, node in manifest.get("sources", {}).items()
        if node.get("relation_name")
    }
    relations = {uid: node["relation_name"] for uid, node in nodes.items()}

    def reads(uid: str) -> list[str]:
        # What the SQL itself names: a `-- depends_on:` comment (int_customer_changes,
        # read only by incremental builds) is not a read.
        code = _LINE_COMMENT.sub("", nodes[uid]["compiled_code"])
        return [
            other
            for other, relation in {**relations, **sources}.items()
            if other != uid and relation in code
        ]

    order: list[str] = []
    read_sources: set[str] = set()

    def visit(uid: str) -> None:
        if uid in order:
            return
        for dependency in reads(uid):
            if dependency in sources:
                read_sources.add(dependency)
            else:
                visit(dependency)
        order.append(uid)

    visit(finals[0])
    source_tables = _check_sources(manifest, read_sources)
    database = str(nodes[finals[0]]["database"])
    catalogue = {
        uid
        for uid in sources
        if (manifest["sources"][uid]["schema"], _source_table(manifest["sources"][uid]))
        == (RAW_SCHEMA, CATALOGUE_TABLE)
    }
    # Models that read, through everything they read, only the shared catalogue.
    catalogue_only: set[str] = set()
    for uid in order:
        if all(d in catalogue or d in catalogue_only for d in reads(uid)):
            catalogue_only.add(uid)
    models = []
    for uid in order[:-1]:
        node = nodes[uid]
        sql = node["compiled_code"]
        _check_full_build(node["name"], sql)
        if SENTINEL_AS_OF in sql:
            raise FeatureCompileError(
                f"{node['name']} renders the as-of date: only {FEATURES_MODEL} may read it"
            )
        models.append(
            CompiledModel(
                name=node["name"],
                relation=node["relation_name"],
                schema=node["schema"],
                sql=sql,
                materialized="table" if uid in catalogue_only else "view",
            )
        )
    final = nodes[finals[0]]
    _check_full_build(FEATURES_MODEL, final["compiled_code"])
    columns = tuple(
        (str(name), str(column.get("data_type") or ""))
        for name, column in final.get("columns", {}).items()
    )
    return CompiledFeatures(
        database=database,
        models=tuple(models),
        final_sql=_under_contract(_as_of_parameter(final["compiled_code"]), final, columns),
        columns=columns,
        sources=tuple(sorted(source_tables)),
        dbt_version=str(manifest.get("metadata", {}).get("dbt_version", "")),
        dbt_vars=dict(dbt_vars),
        key=key,
    )


def _as_of_parameter(sql: str) -> str:
    literal = f"'{SENTINEL_AS_OF}'"
    count = sql.count(literal)
    if count == 0 or sql.count(SENTINEL_AS_OF) != count:
        raise FeatureCompileError(
            f"{FEATURES_MODEL} does not render the as-of date as the literal {literal} "
            "(macro as_of_timestamp): the date cannot be substituted safely"
        )
    return sql.replace(literal, AS_OF_PARAMETER)


def _under_contract(sql: str, node: Mapping[str, Any], columns: Sequence[tuple[str, str]]) -> str:
    """The select as the mart stores it: dbt creates a contracted table with the declared
    column types and inserts the select into it, so each column takes that type."""
    if not (node.get("contract") or {}).get("enforced") or not columns:
        return sql
    casts = ",\n    ".join(
        f'cast("{name}" as {data_type}) as "{name}"' if data_type else f'"{name}"'
        for name, data_type in columns
    )
    return f"select\n    {casts}\nfrom (\n{sql}\n) as model_subq"


def _check_full_build(name: str, sql: str) -> None:
    if "_incremental_watermarks" in sql or "int_customer_changes" in _LINE_COMMENT.sub("", sql):
        raise FeatureCompileError(
            f"{name} compiled as an incremental build; serving needs the full-build SQL "
            "(compile against an empty warehouse)"
        )


def _source_table(source: Mapping[str, Any]) -> str:
    return str(source.get("identifier") or source["name"])


def _check_sources(manifest: Mapping[str, Any], read: Iterable[str]) -> set[tuple[str, str]]:
    """The raw relations the chain reads must be ones the engine holds."""
    known = {(RAW_SCHEMA, name) for name in (*HISTORY_TABLES, CATALOGUE_TABLE)}
    known.add((META_SCHEMA, "partitions"))
    tables = set()
    for uid in read:
        source = manifest["sources"][uid]
        table = (str(source["schema"]), _source_table(source))
        if table not in known:
            raise FeatureCompileError(
                f"{FEATURES_MODEL} reads {source['relation_name']}, which online scoring "
                "does not hold"
            )
        tables.add(table)
    return tables
