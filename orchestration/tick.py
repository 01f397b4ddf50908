"""`nextbuy tick`: the local stand-in for the Dagster daemon. One call evaluates every
sensor and schedule of the Definitions once, executes the runs they request in this
process (recorded in the instance, so the UI shows them) and reports what ran.

It keeps the daemon's rules: a run key already used by a sensor is never requested
again (even when that run failed: incremental dbt state, not the sensor, makes sure the
next run picks the work up), a sensor's cursor is stored after its runs were started,
and a schedule fires once for the cron times that passed since the last tick (the first
tick only notes the time). Cursors and schedule times live in the Dagster instance under
NEXTBUY_HOME, so they survive a restart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from orchestration.environment import Environment

SENSOR_NAME_TAG = "dagster/sensor_name"
SCHEDULE_NAME_TAG = "dagster/schedule_name"
RUN_KEY_TAG = "dagster/run_key"
PARTITION_TAG = "dagster/partition"
# Rounds of sensor evaluation in one tick: features, daily, a retrain on alert, spare.
MAX_ROUNDS = 5


@dataclass(frozen=True)
class TickRun:
    """One run a tick executed."""

    requested_by: str  # "sensor <name>" or "schedule <name>"
    job: str
    run_id: str
    success: bool
    tags: dict[str, str]
    # The failure summary when the run failed.
    error: str | None = None
    # What changed, one line per asset people look at (scores, audience, monitoring).
    changes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TickResult:
    runs: list[TickRun]
    # Why an instigator requested nothing, by name.
    skipped: dict[str, str]


def _cursor_key(kind: str, name: str) -> str:
    return f"nextbuy/tick/{kind}/{name}"


def tick(
    env: Environment,
    *,
    now: dt.datetime | None = None,
    on_run: Callable[[TickRun], None] | None = None,
    progress: Callable[[str], Any] | None = None,
) -> TickResult:
    """Evaluate every sensor and schedule once and execute what they request;
    ``progress`` receives a line as each step of a run starts and ends."""
    from orchestration.definitions import build_definitions
    from orchestration.instance import instance

    defs = build_definitions()
    with instance(env) as inst:
        state = _Tick(inst, defs, on_run, progress)
        # The daemon evaluates sensors every few seconds; a tick goes round until none
        # asks for more, so that a run one sensor reacts to (features -> daily -> retrain
        # on alert) happens in the same tick.
        for _ in range(MAX_ROUNDS):
            before = len(state.runs)
            for sensor in defs.sensors or []:
                assert isinstance(sensor, dg.SensorDefinition)
                state.sensor(sensor)
            if len(state.runs) == before:
                break
        for schedule in defs.schedules or []:
            assert isinstance(schedule, dg.ScheduleDefinition)
            state.schedule(schedule, now or dt.datetime.now(dt.UTC))
    # A sensor that ran something in an earlier round and found nothing later did its work.
    for run in state.runs:
        state.skipped.pop(run.requested_by.split(" ", 1)[1], None)
    return TickResult(runs=state.runs, skipped=state.skipped)


@dataclass
class _Tick:
    inst: dg.DagsterInstance
    defs: dg.Definitions
    on_run: Callable[[TickRun], None] | None
    progress: Callable[[str], Any] | None
    runs: list[TickRun] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def run(self, job_name: str, request: dg.RunRequest, tags: dict[str, str], by: str) -> None:
        self.runs.append(_execute(self.inst, self.defs, job_name, request, tags, by, self.progress))
        if self.on_run:
            self.on_run(self.runs[-1])

    def sensor(self, sensor: dg.SensorDefinition) -> None:
        key = _cursor_key("sensor", sensor.name)
        cursor = self.inst.run_storage.get_cursor_values({key}).get(key)
        context = dg.build_sensor_context(
            instance=self.inst,
            # With a ref, the context checks requested partition keys as the daemon does:
            # against the instance's dynamic partitions and those the same result adds.
            instance_ref=self.inst.get_ref(),
            cursor=cursor,
            sensor_name=sensor.name,
            definitions=self.defs,
            resources=self.defs.resources,
        )
        data = sensor.evaluate_tick(context)
        for change in data.dynamic_partitions_requests or []:
            if isinstance(change, dg.AddDynamicPartitionsRequest):
                known = set(self.inst.get_dynamic_partitions(change.partitions_def_name))
                new = [k for k in change.partition_keys if k not in known]
                if new:
                    self.inst.add_dynamic_partitions(change.partitions_def_name, new)
            else:
                for key in change.partition_keys:
                    self.inst.delete_dynamic_partition(change.partitions_def_name, key)
        requests = list(data.run_requests or [])
        for request in requests:
            if request.run_key and _run_key_used(self.inst, sensor.name, request.run_key):
                self.skipped[sensor.name] = f"run key {request.run_key} was already requested"
                continue
            tags = {**(request.tags or {}), SENSOR_NAME_TAG: sensor.name}
            if request.partition_key:
                tags[PARTITION_TAG] = request.partition_key
            if request.run_key:
                tags[RUN_KEY_TAG] = request.run_key
            job_name = request.job_name or sensor.job_name
            self.run(job_name, request, tags, f"sensor {sensor.name}")
        if not requests and sensor.name not in self.skipped:
            self.skipped[sensor.name] = data.skip_message or "requested nothing"
        # As the daemon does: the cursor moves once the tick's runs have been started.
        if data.cursor is not None and data.cursor != cursor:
            self.inst.run_storage.set_cursor_values({key: data.cursor})

    def schedule(self, schedule: dg.ScheduleDefinition, now: dt.datetime) -> None:
        from dagster._utils.schedules import cron_string_iterator

        key = _cursor_key("schedule", schedule.name)
        last = self.inst.run_storage.get_cursor_values({key}).get(key)
        self.inst.run_storage.set_cursor_values({key: now.isoformat()})
        if last is None:
            self.skipped[schedule.name] = "first tick: the schedule starts counting from now"
            return
        due = next(
            cron_string_iterator(
                dt.datetime.fromisoformat(last).timestamp(),
                schedule.cron_schedule,
                schedule.execution_timezone or "UTC",
            )
        )
        if due.timestamp() > now.timestamp():
            self.skipped[schedule.name] = f"next run due {due.isoformat()}"
            return
        # With the repository and an instance ref, a requested partition key is checked
        # against the job's partitions, as the daemon does.
        context = dg.build_schedule_context(
            instance=self.inst,
            instance_ref=self.inst.get_ref(),
            scheduled_execution_time=due,
            repository_def=self.defs.get_repository_def(),
        )
        for request in schedule.evaluate_tick(context).run_requests or []:
            tags = {**(request.tags or {}), SCHEDULE_NAME_TAG: schedule.name}
            if request.partition_key:
                tags[PARTITION_TAG] = request.partition_key
            self.run(schedule.job_name, request, tags, f"schedule {schedule.name}")


def _run_key_used(inst: dg.DagsterInstance, sensor: str, key: str) -> bool:
    found = inst.get_runs(
        filters=dg.RunsFilter(tags={SENSOR_NAME_TAG: sensor, RUN_KEY_TAG: key}), limit=1
    )
    return bool(found)


def _execute(
    inst: dg.DagsterInstance,
    defs: dg.Definitions,
    job_name: str,
    request: dg.RunRequest,
    tags: dict[str, str],
    requested_by: str,
    progress: Callable[[str], Any] | None = None,
) -> TickRun:
    from orchestration.instance import execute_here
    from orchestration.run_report import failure_summary, warning_lines

    job = defs.resolve_job_def(job_name)
    result = execute_here(
        job,
        inst,
        run_config=dict(request.run_config or {}),
        tags=tags,
        progress=progress,
        requested_by=requested_by,
    )
    return TickRun(
        requested_by=requested_by,
        job=job_name,
        run_id=result.run_id,
        success=result.success,
        tags=tags,
        error=None
        if result.success
        else failure_summary(result, defs, job.asset_layer.executable_asset_keys),
        # A failed run's summary already holds its warnings.
        changes=tuple(changes_of(result, defs) + (warning_lines(result) if result.success else [])),
    )


def changes_of(result: dg.ExecuteInProcessResult, defs: dg.Definitions) -> list[str]:
    """One line per materialised asset that says what it now holds: the `summary` of its
    metadata, and for the campaign audience (a dbt model) its size and date."""
    lines = []
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
        key = materialization.asset_key
        summary = materialization.metadata.get("summary")
        if summary is not None:
            lines.append(f"{key.to_user_string()}: {summary.value}")
        elif key.path[-1] == "campaign_audience":
            lines.append(f"{key.to_user_string()}: {_audience(defs)}")
    return lines


def _audience(defs: dg.Definitions) -> str:
    import pandas as pd

    from orchestration.audience import AUDIENCE_TABLE

    warehouse = defs.resources["warehouse"]
    counts = warehouse.query(  # type: ignore[attr-defined]
        f"select as_of, count(*) as n from {warehouse.relation(AUDIENCE_TABLE)} "  # type: ignore[attr-defined]
        "group by as_of order by as_of"
    )
    rows = [
        (pd.Timestamp(d).date(), int(n)) for d, n in zip(counts["as_of"], counts["n"], strict=True)
    ]
    return "; ".join(f"{n:,} customers to mail, as of {as_of}" for as_of, n in rows) or "empty"
