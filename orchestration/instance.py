"""The Dagster instance of a NEXTBUY_HOME, and how a job executes in this process as a
run of the job the UI's code location serves.

`nextbuy` runs its jobs in process (orchestration/pipeline.py, orchestration/tick.py);
`nextbuy ui` serves the same instance, so every run shows there, filed under the code
location and with the job's own snapshot.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.environment import Environment
from orchestration.progress import step_progress

DAGSTER_YAML = """\
# Written by nextbuy: the Dagster instance for this NEXTBUY_HOME (runs, events, schedules).
telemetry:
  enabled: false
"""


def dagster_home(env: Environment) -> Path:
    """The Dagster instance folder under NEXTBUY_HOME, with telemetry off in its config."""
    home = env.home / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML, encoding="utf-8")
    return home


def instance(env: Environment) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(dagster_home(env)))


# The code location workspace.yaml (and pyproject's [tool.dg.project]) names.
LOCATION_NAME = "nextbuy"


def location_tags() -> dict[str, str]:
    """The tag that files an in-process run under the code location `nextbuy ui` loads, as
    a run launched from the UI is filed: the job's Runs tab, the overview timeline and the
    run filters find CLI runs by it. (Dagster adds it only to runs launched with a remote
    origin, which a run executed in this process has not.)"""
    from dagster._core.definitions.repository_definition.valid_definitions import (
        SINGLETON_REPOSITORY_NAME,
    )
    from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

    return {REPOSITORY_LABEL_TAG: f"{SINGLETON_REPOSITORY_NAME}@{LOCATION_NAME}"}


# Which process executed a run in process, and on which machine: a run still in progress
# whose process is gone was killed (orchestration/dangling.py closes it).
EXECUTED_BY_PID_TAG = "nextbuy/executed_by_pid"
EXECUTED_ON_HOST_TAG = "nextbuy/executed_on_host"


def process_tags() -> dict[str, str]:
    return {EXECUTED_BY_PID_TAG: str(os.getpid()), EXECUTED_ON_HOST_TAG: socket.gethostname()}


# Run config that makes a job's own executor (Dagster's default, multi_or_in_process)
# execute every step in this process.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def execute_here(
    job: dg.JobDefinition,
    inst: dg.DagsterInstance,
    *,
    run_config: dict[str, Any],
    tags: dict[str, str],
    progress: Callable[[str], Any] | None = None,
    requested_by: str | None = None,
) -> dg.ExecuteInProcessResult:
    """Execute ``job`` in this process as a run of the job the UI's code location serves;
    ``progress`` gets a header line (naming ``requested_by``) and the run's steps.

    ``job.execute_in_process`` records a run of a rebound copy of the job (the in-process
    executor and an in-memory IO manager swapped in), whose snapshot differs from the
    job's: the UI then says a re-execution "may be a different version". Here the run
    records the job itself, executing on its own executor configured in-process (so a
    re-execution from the UI runs in one process too), its outputs kept by its IO manager
    as the UI's runs keep them, filed under the code location (location_tags) and tagged
    with this process (process_tags)."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.execute_in_process import core_execute_in_process

    run_id = str(uuid.uuid4())
    if progress is not None:
        by = f", requested by {requested_by}" if requested_by else ""
        progress(f"{job.name} run {run_id}{by}:")
    with step_progress(inst, run_id, progress):
        return core_execute_in_process(
            run_config={**run_config, **IN_PROCESS},
            job=InMemoryJob(job),
            instance=inst,
            output_capturing_enabled=True,
            raise_on_error=False,
            run_tags={**job.run_tags, **tags, **location_tags(), **process_tags()},
            run_id=run_id,
        )
