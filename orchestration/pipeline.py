"""Run nextbuy's jobs in this process and summarise them for people and scripts.

`nextbuy demo`, `pipeline` and `features` call this; the Dagster UI runs the same jobs
from the same Definitions. Runs are recorded in the Dagster instance under
NEXTBUY_HOME/dagster (orchestration/instance.py, which also executes a job in this
process), so `nextbuy ui` shows them afterwards. What a run says to people and scripts
(the report, the failure summary) is orchestration/run_report.py's.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import dagster as dg
import pandas as pd

from orchestration.environment import current_environment
from orchestration.instance import execute_here, instance
from orchestration.partitions import FeatureRun
from orchestration.run_report import failure_summary, summary_json, warning_lines

if TYPE_CHECKING:
    from orchestration.resources import Warehouse


class PipelineFailed(RuntimeError):
    """A step or a blocking check failed; the message names it."""


@dataclass(frozen=True)
class PipelineResult:
    run_id: str
    as_of: str | None
    report: dict[str, Any]
    metrics: Any  # pandas DataFrame: overall test metrics per scorer
    scored: int
    audience: int


@contextmanager
def output_to(path: Path | None, progress: Callable[[str], Any] | None = None) -> Iterator[None]:
    """dagster-dbt writes every dbt line to stdout and Dagster logs each event to stderr:
    hundreds of lines. The CLI sends them to a file and prints a short report instead;
    with ``progress``, dbt's line for each model it builds goes there too."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # Appended: the run's log (orchestration/run_logs.py) starts with its header line.
    with open(path, "a", encoding="utf-8") as file:
        log = file if progress is None else DbtProgressLog(file, progress)
        with redirect_stdout(log), redirect_stderr(log):  # type: ignore[type-var]
            yield
        log.flush()


# dbt's line for a model it built or failed to build ("3 of 118 OK created sql table model
# marts.customer_features ... [OK in 2.31s]"), without its colour codes.
_DBT_MODEL_LINE = re.compile(r"\d+ of \d+ (OK created|ERROR creating) .*")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


class DbtProgressLog(io.TextIOBase):
    """A log file that also hands dbt's model lines to ``progress``, so a terminal shows
    the models being built while the log takes everything."""

    def __init__(self, file: TextIO, progress: Callable[[str], Any]) -> None:
        self._file = file
        self._progress = progress
        self._partial = ""

    def write(self, text: str) -> int:
        self._file.write(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            match = _DBT_MODEL_LINE.search(_COLOUR.sub("", line))
            if match:
                self._progress(f"    dbt: {re.sub(r' [.]{3,} ', ' ', match.group(0))}")
        return len(text)

    def flush(self) -> None:
        self._file.flush()


def feature_run(
    inst: dg.DagsterInstance,
    warehouse: Warehouse,
    *,
    full_refresh: bool = False,
) -> FeatureRun:
    """The raw order_items day partitions a `features` run processes, registered: all of
    them for a full refresh; otherwise the new or changed ones (or,
    when none changed, the newest, so that customer_features is rebuilt as of the date
    asked). See partitions.plan_feature_run."""
    from orchestration.partitions import (
        ORDER_ITEMS_DAYS,
        add_partitions,
        changed_partitions,
        plan_feature_run,
        processed_state,
    )

    present = warehouse.partitions()
    if not present:
        raise PipelineFailed(
            f"raw.order_items in {_where(warehouse)} has no day partition: load or simulate "
            "data first"
        )
    ids = [p.partition_id for p in present]
    if full_refresh:
        chosen = ids
    else:
        chosen = [p.partition_id for p in changed_partitions(present, processed_state(inst))]
        chosen = chosen or ids[-1:]
    name = ORDER_ITEMS_DAYS.name or ""
    plan = plan_feature_run(chosen, inst.get_dynamic_partitions(name), rebuild=full_refresh)
    add_partitions(inst, ORDER_ITEMS_DAYS, plan.register)
    return plan


def as_of_partition(inst: dg.DagsterInstance, as_of: str) -> dict[str, str]:
    """The tags of a `daily` or `retrain` run for one as-of date, registered first."""
    from orchestration.partitions import AS_OF_DATES, add_partitions, partition_range_tags

    add_partitions(inst, AS_OF_DATES, [as_of])
    return partition_range_tags([as_of])


def features_as_of(warehouse: Warehouse) -> str:
    """The date marts.customer_features is computed as of, which the scoring jobs are for."""
    table = "marts.customer_features"
    try:
        rows = warehouse.query(f"select distinct as_of from {warehouse.relation(table)}")
    except Exception as e:
        raise PipelineFailed(
            f"{table} in {_where(warehouse)} cannot be read ({e}): run `nextbuy features` first"
        ) from e
    if len(rows) != 1:
        raise PipelineFailed(
            f"{table} in {_where(warehouse)} holds {len(rows)} as_of dates, not one"
        )
    value = pd.Timestamp(rows.iloc[0]["as_of"]).to_pydatetime()
    if isinstance(value, dt.datetime):
        value = value.date()
    return value.isoformat() if isinstance(value, dt.date) else str(value)[:10]


def run_job(
    name: str,
    as_of: dt.date | None,
    *,
    full_refresh: bool = False,
    log_to: Path | None = None,
    warehouse: Path | None = None,
    progress: Callable[[str], Any] | None = None,
) -> tuple[dg.ExecuteInProcessResult, dg.Definitions]:
    """Execute job ``name`` of the Definitions in this process, recorded in the instance.

    `features` runs over raw day partitions (the changed ones: feature_run; all of them when
    the data-defining settings changed or raw lost rows: _must_rebuild) and computes customer_features
    as of ``as_of`` (default: from
    the data); `daily` and `retrain` run for one as-of date partition (``as_of``, default
    the date customer_features is computed as of). With ``log_to``, the run's output
    goes to that file rather than the terminal; with ``warehouse``, the run works on that
    DuckDB file instead of the environment's; ``progress`` receives a line as each step
    starts and ends, and the checks that warned. PipelineFailed names the failed checks and
    steps.
    """
    from orchestration.definitions import build_definitions
    from orchestration.defs.features.sensors import features_run_config
    from orchestration.resources import warehouse_resource

    env = current_environment()
    engine = warehouse_resource(env, warehouse)
    with output_to(log_to, progress):
        defs = build_definitions(warehouse=warehouse)
        job = defs.resolve_job_def(name)
        with instance(env) as inst:
            if name == "features":
                full_refresh = full_refresh or _must_rebuild(engine, inst, progress)
                plan = feature_run(inst, engine, full_refresh=full_refresh)
                tags = plan.tags()
                run_config = features_run_config(
                    as_of.isoformat() if as_of else None,
                    full_refresh=full_refresh,
                    rebuild=plan.rebuild,
                )
            else:
                tags = as_of_partition(inst, as_of.isoformat() if as_of else features_as_of(engine))
                run_config = {}
            result = execute_here(job, inst, run_config=run_config, tags=tags, progress=progress)
    if progress is not None:
        for warning in check_warnings(result):
            progress(warning)
    if not result.success:
        raise PipelineFailed(failure_summary(result, defs, job.asset_layer.executable_asset_keys))
    if progress is not None:
        # dbt tests of severity warn (NaN prices, orphan items, ...) pass, and say so.
        for line in warning_lines(result):
            progress(f"  {line}")
    return result, defs


def check_warnings(result: dg.ExecuteInProcessResult) -> list[str]:
    """A line for each WARN-severity check of the run that did not pass (non-blocking:
    the run goes on, but people should read what it found)."""
    return [
        f"  warning: check {e.check_name} on {e.asset_key.to_user_string()}: {e.description}"
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.WARN
    ]


def _must_rebuild(
    warehouse: Warehouse, inst: dg.DagsterInstance, progress: Callable[[str], Any] | None
) -> bool:
    """Whether the marts were built with other data-defining settings or SQL than now
    (orchestration/fingerprint.py), or raw lost partitions or was replaced since the last
    build (orchestration/removals.py): then the run is a full refresh over all
    partitions, and the terminal says why."""
    from orchestration.fingerprint import current_fingerprint
    from orchestration.partitions import processed_state
    from orchestration.removals import full_rebuild_notice
    from orchestration.settings import load_parameters

    fingerprint = current_fingerprint(load_parameters())
    notice = full_rebuild_notice(warehouse, fingerprint, processed_state(inst))
    if notice and progress is not None:
        progress(notice)
    return notice is not None


def run_pipeline(
    as_of: dt.date | None,
    *,
    full_refresh: bool = False,
    log_to: Path | None = None,
    progress: Callable[[str], Any] | None = None,
) -> PipelineResult:
    """The whole lifecycle in this process: a `features` run over the changed day
    partitions (all of them with ``full_refresh``), then a `retrain` run for the date the
    features are computed as of (train, gate, score, audience, monitoring)."""
    with output_to(log_to, progress):  # one log for both runs
        try:
            run_job("features", as_of, full_refresh=full_refresh, progress=progress)
        except PipelineFailed as e:
            raise PipelineFailed(f"{e}\n{_not_run('retrain')}") from e
        return run_retrain(as_of, progress=progress)


def run_retrain(
    as_of: dt.date | None,
    *,
    log_to: Path | None = None,
    progress: Callable[[str], Any] | None = None,
) -> PipelineResult:
    """The `retrain` run alone, on the features the warehouse holds (after a change of
    parameters.yaml, or a candidate to try without rebuilding them): train, gate, score,
    audience, monitoring for ``as_of`` (default: the features' date)."""
    from orchestration.defs.scoring.assets import SCORES_KEY
    from orchestration.resources import warehouse_resource

    env = current_environment()
    with output_to(log_to, progress):
        result, _ = run_job("retrain", as_of, progress=progress)
    decision = result.output_for_node("champion_model")
    scores_event = _materialization(result, SCORES_KEY)
    scored = int(scores_event.get("dagster/row_count", 0)) if scores_event else 0
    report = summary_json(decision)
    return PipelineResult(
        run_id=result.run_id,
        as_of=str(scores_event.get("as_of")) if scores_event else None,
        report=report,
        metrics=decision.metrics,
        scored=scored,
        audience=_count_audience(warehouse_resource(env)),
    )


def _not_run(job: str) -> str:
    from orchestration.definitions import build_definitions

    keys = build_definitions().resolve_job_def(job).asset_layer.executable_asset_keys
    names = ", ".join(sorted(k.to_user_string() for k in keys))
    return f"the `{job}` job did not run, so these were left as they were: {names}"


def _materialization(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
        if materialization.asset_key == key:
            return {k: v.value for k, v in materialization.metadata.items()}
    return {}


def _count_audience(warehouse: Warehouse) -> int:
    table = warehouse.relation("marts.campaign_audience")
    return int(warehouse.query(f"select count(*) as n from {table}").iloc[0]["n"])


def _where(warehouse: Warehouse) -> str:
    """Which warehouse, for a message: the DuckDB file, or BigQuery's project."""
    from orchestration.resources import duckdb_file

    path = duckdb_file(warehouse)
    return str(path) if path else f"BigQuery project {getattr(warehouse, 'project', '')}"
