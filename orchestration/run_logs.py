"""One log file per state-writing `nextbuy` command, under NEXTBUY_HOME/logs.

A run's log is ``<UTC start>-<command>-<pid>.log`` (names sort by time): a header line
(the command, its pid, its start), the run's full output for the commands that run
Dagster jobs (every Dagster event, dbt's log), and a last line saying how it ended.
``logs/pipeline.log`` is a symbolic link to the newest log of a command that ran jobs,
where the README sends people. The newest ``KEEP_LOGS`` logs are kept.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

LOGS_FOLDER = "logs"
LATEST_LINK = "pipeline.log"
KEEP_LOGS = 50

_RUN_LOG = re.compile(r"^\d{8}T\d{6}Z-[\w-]+-\d+\.log$")


def new_run_log(home: Path, command: str, header: str, *, pid: int | None = None) -> Path:
    """Create the log of a run of ``command`` with ``header`` as its first line, and
    prune the oldest logs beyond ``KEEP_LOGS``."""
    folder = home / LOGS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    name = re.sub(r"[^\w-]", "_", command)
    path = folder / f"{started}-{name}-{pid or os.getpid()}.log"
    path.write_text(header.rstrip("\n") + "\n", encoding="utf-8")
    prune(folder, keep=KEEP_LOGS)
    return path


def point_latest(log: Path) -> Path:
    """Point ``logs/pipeline.log`` at ``log`` (relative, replaced atomically: a reader
    sees the old log or the new one); returns the link."""
    link = log.parent / LATEST_LINK
    staging = log.parent / f".{LATEST_LINK}.{os.getpid()}"
    staging.unlink(missing_ok=True)
    staging.symlink_to(log.name)
    os.replace(staging, link)  # also replaces a pipeline.log file of older versions
    return link


def prune(folder: Path, *, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` run logs in ``folder``; returns those removed."""
    logs = sorted(p for p in folder.iterdir() if _RUN_LOG.match(p.name))
    old = logs[:-keep] if keep > 0 else logs
    for path in old:
        path.unlink(missing_ok=True)
    return old


def append(log: Path, line: str) -> None:
    with open(log, "a", encoding="utf-8") as file:
        file.write(line.rstrip("\n") + "\n")
