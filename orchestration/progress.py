"""Progress of an in-process run on the terminal while its full output goes to the log.

`nextbuy demo`, `pipeline`, `features` and `tick` send Dagster's and dbt's hundreds of lines
to .nextbuy/logs/pipeline.log; without this, a terminal user waits minutes in silence. A
thread follows the run's events in the Dagster instance (the same events the UI shows) and
prints one line when a step starts and one when it ends, with its duration.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

POLL_SECONDS = 0.5

_SHOWN = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.STEP_SKIPPED,
}


# The terminal of the run this process is executing, while step_progress follows it.
_terminal: Callable[[str], Any] | None = None


def note(line: str) -> None:
    """A progress line from inside a step (training iterations, scoring batches), printed
    under the step's own line on the terminal that started the run in this process; a
    no-op for runs nobody watches there (the daemon's, the UI's). Steps log the same
    line to Dagster, where the UI shows it."""
    terminal = _terminal
    if terminal is not None:
        terminal(f"  {time.strftime('%H:%M:%S')}   {line}")


@contextmanager
def step_progress(
    instance: dg.DagsterInstance, run_id: str, echo: Callable[[str], Any] | None
) -> Iterator[None]:
    """Print the steps of run ``run_id`` with ``echo`` while the block runs (nothing when
    ``echo`` is None), and the lines steps give ``note``."""
    global _terminal
    if echo is None:
        yield
        return
    _terminal = echo
    done = threading.Event()
    watcher = threading.Thread(
        target=_follow, args=(instance, run_id, echo, done), name="nextbuy-progress", daemon=True
    )
    watcher.start()
    try:
        yield
    finally:
        _terminal = None
        done.set()
        watcher.join(timeout=10)


def _follow(
    instance: dg.DagsterInstance,
    run_id: str,
    echo: Callable[[str], Any],
    done: threading.Event,
) -> None:
    cursor: str | None = None
    started: dict[str, float] = {}
    while True:
        finishing = done.is_set()
        try:
            page = instance.get_records_for_run(run_id, cursor=cursor, of_type=_SHOWN)
        except Exception:  # the run is not written yet, or the storage is busy
            page = None
        if page is not None:
            cursor = page.cursor
            for record in page.records:
                line = _line(record.event_log_entry, started)
                if line:
                    echo(line)
        if finishing:
            return
        done.wait(POLL_SECONDS)


def _line(entry: Any, started: dict[str, float]) -> str | None:
    event = entry.dagster_event
    if event is None or not event.step_key:
        return None
    step = event.step_key
    clock = time.strftime("%H:%M:%S", time.localtime(entry.timestamp))
    kind = event.event_type
    if kind == dg.DagsterEventType.STEP_START:
        started[step] = entry.timestamp
        return f"  {clock} {step} ..."
    took = entry.timestamp - started.get(step, entry.timestamp)
    if kind == dg.DagsterEventType.STEP_SUCCESS:
        return f"  {clock} {step} done ({took:.0f} s)"
    if kind == dg.DagsterEventType.STEP_FAILURE:
        return f"  {clock} {step} FAILED after {took:.0f} s"
    return f"  {clock} {step} skipped (an upstream step failed or did not run)"
