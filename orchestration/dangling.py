"""Close the runs a killed `nextbuy` left open: its Dagster runs stay STARTED and its
MLflow runs RUNNING forever, in the UI and to anything that waits for them.

The next state-writing command calls ``close_dangling_runs`` once it holds the home's lock
and has found the killed holder's record there (orchestration/runlock.py). Which runs:

- **Dagster:** runs in progress that a `nextbuy` process executed in process on this
  machine (instance.process_tags) and whose process is gone. Runs launched from the
  Dagster UI carry no such tags: their run launcher's process may well be alive, and
  Dagster's own run monitoring is theirs. A live pid (a notebook calling run_pipeline,
  or a pid reused since) keeps its run open: a later command closes it once it is gone.
- **MLflow:** RUNNING runs that started after the earliest Dagster run closed here, unless
  a `dagster.run_id` tag names another Dagster run. Only the local store: a tracking
  server is shared with other machines whose live runs a time window cannot tell apart,
  so there only runs tagged with a closed Dagster run are closed.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from orchestration.environment import Environment
from orchestration.runlock import Holder

# The Dagster statuses of a run not yet ended (QUEUED runs wait for the UI's daemon).
OPEN_STATUSES = ("NOT_STARTED", "STARTING", "STARTED", "CANCELING")
# The tag training runs carry (orchestration/defs/training/assets.py).
DAGSTER_RUN_TAG = "dagster.run_id"


@dataclass
class Closed:
    dagster: list[str] = field(default_factory=list)  # "<run id> (<job>)"
    mlflow: list[str] = field(default_factory=list)  # run ids
    # Start of the earliest Dagster run closed, seconds since the epoch.
    since: float | None = None
    dagster_ids: set[str] = field(default_factory=set)


def close_dangling_runs(env: Environment, killed: Holder) -> str:
    """Mark the open runs of killed `nextbuy` processes failed (Dagster) and KILLED
    (MLflow); returns one line saying what was closed."""
    closed = Closed()
    if (env.home / "dagster").is_dir():
        _close_dagster_runs(env, closed)
    if closed.dagster_ids:
        _close_mlflow_runs(env, closed)
    what = "; ".join(
        part
        for part in (
            f"Dagster run(s) {', '.join(closed.dagster)} marked failed" if closed.dagster else "",
            f"MLflow run(s) {', '.join(closed.mlflow)} marked KILLED" if closed.mlflow else "",
        )
        if part
    )
    return f"the previous nextbuy run ({killed.describe()}) was killed; " + (
        f"closed what it left open: {what}" if what else "it left no run open"
    )


def _close_dagster_runs(env: Environment, closed: Closed) -> None:
    import dagster as dg

    from orchestration.instance import (
        EXECUTED_BY_PID_TAG,
        EXECUTED_ON_HOST_TAG,
        instance,
    )

    with instance(env) as inst:
        records = inst.get_run_records(
            filters=dg.RunsFilter(
                statuses=[dg.DagsterRunStatus(s) for s in OPEN_STATUSES],
                tags={EXECUTED_ON_HOST_TAG: socket.gethostname()},
            )
        )
        for record in records:
            run = record.dagster_run
            pid = int(run.tags.get(EXECUTED_BY_PID_TAG, "0"))
            if not pid or is_alive(pid):
                continue
            inst.report_run_failed(
                run, f"marked failed by nextbuy: its process (pid {pid}) is gone"
            )
            closed.dagster.append(f"{run.run_id} ({run.job_name})")
            closed.dagster_ids.add(run.run_id)
            started = record.start_time or record.create_timestamp.timestamp()
            closed.since = min(started, closed.since or started)


def _close_mlflow_runs(env: Environment, closed: Closed) -> None:
    from orchestration.mlflow_store import tracking_uri

    uri = tracking_uri(env)
    local = uri.startswith("sqlite:")
    if local and not (env.home / "mlflow" / "mlflow.db").exists():
        return
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return
    since_ms = int((closed.since or 0) * 1000)
    for run in client.search_runs(
        experiments, filter_string="attributes.status = 'RUNNING'", max_results=10_000
    ):
        owner = run.data.tags.get(DAGSTER_RUN_TAG)
        if owner is not None:
            orphaned = owner in closed.dagster_ids
        else:
            orphaned = local and run.info.start_time >= since_ms
        if orphaned:
            client.set_terminated(run.info.run_id, "KILLED")
            closed.mlflow.append(run.info.run_id)


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
