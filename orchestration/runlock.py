"""One state-writing `nextbuy` command at a time per NEXTBUY_HOME.

Two commands writing one home (its DuckDB warehouse, Dagster instance, MLflow store and
logs) fight over DuckDB's file lock: the second fails deep inside dbt, or makes the first
fail mid-training. ``session`` makes the second refuse at once instead, naming the first.

The lock is an exclusive ``fcntl.flock`` on ``NEXTBUY_HOME/nextbuy.lock``: the kernel
releases it when the holder's process ends, however it ends, so a killed run never leaves
a stale lock. The file records the holder (pid, command, start) for the refusal and is
emptied when the holder ends properly; a record the next holder finds there names a run
that was killed, whose open Dagster and MLflow runs that holder then closes
(orchestration/dangling.py) before writing its own record.

The command line marks each state-writing command ``@writes_state``; read-only commands
(warehouse, export-thelook, docs, audience, ui, serve) take no lock.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import json
import os
import shlex
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from orchestration.environment import Environment, current_environment
from thelook.pause_points import pause_point

LOCK_FILE = "nextbuy.lock"


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a home's lock."""

    pid: int
    command: str
    started: str  # UTC, ISO 8601
    host: str

    @classmethod
    def me(cls, command: str) -> Holder:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return cls(os.getpid(), command, now, socket.gethostname())

    def describe(self) -> str:
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"pid {self.pid}{where}, `{self.command}`, started at {self.started}"


class RunLocked(RuntimeError):
    """Another state-writing command holds the home."""

    def __init__(self, path: Path, holder: Holder | None) -> None:
        who = holder.describe() if holder else "which has not written its pid yet"
        super().__init__(f"another nextbuy run ({who}) holds {path}; wait for it or stop it")
        self.holder = holder


class HomeLock:
    """The exclusive lock on a home, taken by ``HomeLock.take`` (or RunLocked)."""

    def __init__(self, path: Path, fd: int, previous: Holder | None) -> None:
        self.path = path
        self._fd = fd
        self._recorded = False
        # The record of a holder that was killed (None after a proper end).
        self.previous = previous

    @classmethod
    def take(cls, home: Path) -> HomeLock:
        home.mkdir(parents=True, exist_ok=True)
        path = home / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise RunLocked(path, holder) from None
        return cls(path, fd, _read(fd))

    def record(self, holder: Holder) -> None:
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(asdict(holder)).encode(), 0)
        os.fsync(self._fd)
        self._recorded = True

    def release(self) -> None:
        """Empty this holder's record (it ended properly) and let go. A killed
        predecessor's record stays until its runs are closed."""
        if self._recorded:
            os.ftruncate(self._fd, 0)
        os.close(self._fd)


def _read(fd: int) -> Holder | None:
    try:
        return Holder(**json.loads(os.pread(fd, 4096, 0)))
    except (ValueError, TypeError):  # empty, or half written
        return None


@dataclass(frozen=True)
class Session:
    """A state-writing command holding its home: its lock and its run's log."""

    lock: HomeLock
    log: Path


@contextmanager
def session(
    env: Environment, command: str, name: str, echo: Callable[[str], Any]
) -> Iterator[Session]:
    """Hold ``env``'s home for the command line ``command`` (``name``: the command's name, for
    its log's file name) while the block runs: take the lock (or raise RunLocked), close
    what a killed predecessor left open (one line to ``echo``), start the run's log
    (orchestration/run_logs.py), and make dbt children end with this process
    (orchestration/children.py). The log's last line says how the block ended."""
    from orchestration.children import children_end_with_this_process
    from orchestration.run_logs import append, new_run_log

    home = env.home
    lock = HomeLock.take(home)
    try:
        if lock.previous is not None:
            echo(_close_what_it_left(env, lock.previous))
        me = Holder.me(command)
        lock.record(me)
        log = new_run_log(home, name, f"{me.command} (pid {me.pid}), started at {me.started}")
        with children_end_with_this_process():
            try:
                pause_point("locked")
                yield Session(lock, log)
                outcome = "ended: ok"
            except SystemExit as e:
                outcome = "ended: ok" if e.code in (0, None) else f"ended: exit code {e.code}"
                raise
            except KeyboardInterrupt:
                outcome = "ended: interrupted (Ctrl-C or SIGTERM)"
                raise
            except BaseException as e:
                outcome = f"ended: failed ({type(e).__name__}: {e})"
                raise
            finally:
                append(log, outcome)
    finally:
        lock.release()


def _close_what_it_left(env: Environment, killed: Holder) -> str:
    """One line on the runs the killed holder left open, now closed. A failure to close
    them is said, not raised: it must not stop every later command."""
    from orchestration.dangling import close_dangling_runs

    try:
        return close_dangling_runs(env, killed)
    except Exception as e:
        return (
            f"the previous nextbuy run ({killed.describe()}) was killed, and closing the "
            f"Dagster and MLflow runs it left open failed ({type(e).__name__}: {e}); "
            "they stay open"
        )


# The command line's side: a decorator per state-writing command, and its run's log.


class Refused(click.ClickException):
    """Not run, nothing changed: another state-writing command holds NEXTBUY_HOME. Exit
    code 2 (as click's usage errors: the command did nothing), apart from 1, a failure."""

    exit_code = 2


_SESSION = "nextbuy.session"
F = TypeVar("F", bound=Callable[..., Any])


def writes_state(command: F) -> F:
    """Mark a click command that writes NEXTBUY_HOME's state: it runs inside ``session``
    (or is Refused), named by its command line."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        name = ctx.info_name or "nextbuy"
        # The command line as typed; under a test's CliRunner, sys.argv is pytest's.
        words = sys.argv[1:] if name in sys.argv[1:] else [name]
        line = shlex.join(["nextbuy", *words])
        try:
            with session(current_environment(), line, name, click.echo) as held:
                ctx.meta[_SESSION] = held
                return command(*args, **kwargs)
        except RunLocked as e:  # raised before the command starts
            raise Refused(str(e)) from e

    return run  # type: ignore[return-value]


def run_log() -> Path:
    """The log of the running command's run, which ``logs/pipeline.log`` now points to:
    for the commands whose run's full output (Dagster's events, dbt's log) goes there."""
    from orchestration.run_logs import point_latest

    held: Session = click.get_current_context().meta[_SESSION]
    point_latest(held.log)
    return held.log
