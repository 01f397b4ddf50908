"""Two `nextbuy` commands on one NEXTBUY_HOME, and commands killed mid-run: real
processes, held or killed at named points (thelook.pause_points), never after a guessed
delay."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from orchestration.environment import PROJECT_ROOT
from orchestration.run_logs import LATEST_LINK, new_run_log, point_latest
from orchestration.runlock import LOCK_FILE, HomeLock
from tests.conftest import FIXTURES

# One small table of a thelook export: the quickest state-writing command that succeeds.
EXPORT = FIXTURES / "thelook_bigquery_export" / "distribution_centers.csv.gz"
DEADLINE_SECONDS = 60


def _nextbuy(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestration.cli", *args]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **extra}


def _start(command: list[str], **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        env=_env(**extra),
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _load() -> subprocess.CompletedProcess[str]:
    """`nextbuy load-thelook` of one small table, to the end."""
    return subprocess.run(
        _nextbuy("load-thelook", str(EXPORT)),
        env=_env(),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
    )


def _paused(process: subprocess.Popen[str], point: str) -> None:
    """Wait for the test hook's line saying ``process`` stopped at ``point``."""
    assert process.stderr is not None
    for line in process.stderr:
        if f"paused at {point}" in line:
            return
    process.wait()
    raise AssertionError(f"process ended (code {process.returncode}) before {point}")


def _home() -> Path:
    return Path(os.environ["NEXTBUY_HOME"])


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test started, killed if the test left them running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_a_second_writer_is_refused_at_once_naming_the_first(
    processes: list[subprocess.Popen[str]],
) -> None:
    holder = _start(_nextbuy("simulate", "--users", "50"), NEXTBUY_TEST_PAUSE_AT="locked")
    processes.append(holder)
    _paused(holder, "locked")

    began = time.monotonic()
    second = _load()
    assert time.monotonic() - began < 10
    assert second.returncode == 2, second.stderr
    assert (
        f"another nextbuy run (pid {holder.pid}, `nextbuy simulate --users 50`, started at "
        in second.stderr
    )
    assert f"holds {_home() / LOCK_FILE}; wait for it or stop it" in second.stderr
    # Refused before touching anything: no warehouse, and only the holder's log.
    assert not (_home() / "warehouse.duckdb").exists()
    assert [p.name.split("-")[1] for p in (_home() / "logs").iterdir()] == ["simulate"]

    # SIGTERM ends the holder properly: its record is emptied, its log says so.
    holder.send_signal(signal.SIGTERM)
    assert holder.wait(timeout=DEADLINE_SECONDS) != 0
    assert (_home() / LOCK_FILE).read_text() == ""
    (log,) = (_home() / "logs").iterdir()
    assert log.read_text().splitlines()[-1] == "ended: interrupted (Ctrl-C or SIGTERM)"


# A run killed mid-training, as far as the stores can tell: a Dagster run executed in
# process by a state-writing command, with two MLflow runs open (a training run tagged
# with the Dagster run, an untagged one as monitoring's), and one MLflow run of another
# Dagster run, which is not this process's to close.
KILLED_RUN = textwrap.dedent(
    """
    import dagster as dg
    from mlflow import MlflowClient

    from orchestration.environment import current_environment
    from orchestration.instance import execute_here, instance
    from orchestration.mlflow_store import tracking_uri
    from orchestration.runlock import session
    from thelook.pause_points import pause_point

    @dg.op
    def train(context: dg.OpExecutionContext) -> None:
        client = MlflowClient(tracking_uri(current_environment()))
        experiment = client.create_experiment("killed")
        client.create_run(experiment, tags={"dagster.run_id": context.run_id})
        client.create_run(experiment)
        client.create_run(experiment, tags={"dagster.run_id": "another-run"})
        pause_point("training")

    @dg.job
    def killed() -> None:
        train()

    env = current_environment()
    with session(env, "nextbuy killed-run", "killed-run", print):
        with instance(env) as inst:
            execute_here(killed, inst, run_config={}, tags={})
    """
)


def _mlflow_runs() -> dict[str, str]:
    """Status of each run in the home's MLflow store, by its `dagster.run_id` tag, read
    with sqlite3 (importing MLflow here would cost seconds)."""
    with closing(sqlite3.connect(_home() / "mlflow" / "mlflow.db")) as db:
        rows = db.execute(
            "select coalesce(t.value, 'untagged'), r.status from runs r left join tags t"
            " on t.run_uuid = r.run_uuid and t.key = 'dagster.run_id'"
        ).fetchall()
    return dict(rows)


def test_the_next_command_closes_the_runs_of_a_killed_one(
    processes: list[subprocess.Popen[str]],
) -> None:
    from orchestration.environment import current_environment
    from orchestration.instance import instance

    killed = _start([sys.executable, "-c", KILLED_RUN], NEXTBUY_TEST_PAUSE_AT="training")
    processes.append(killed)
    _paused(killed, "training")
    killed.kill()
    killed.wait()  # reaped: its pid is gone

    env = current_environment()
    with instance(env) as inst:
        (run,) = inst.get_runs()
    assert run.status.value == "STARTED"
    assert _mlflow_runs() == {
        run.run_id: "RUNNING",
        "untagged": "RUNNING",
        "another-run": "RUNNING",
    }

    after = _load()
    assert after.returncode == 0, after.stderr
    first = after.stdout.splitlines()[0]
    assert first.startswith(
        f"the previous nextbuy run (pid {killed.pid}, `nextbuy killed-run`, started at "
    )
    assert f"Dagster run(s) {run.run_id} (killed) marked failed" in first
    assert "loaded into" in after.stdout

    with instance(env) as inst:
        closed = inst.get_run_by_id(run.run_id)
        assert closed is not None and closed.status.value == "FAILURE"
        failure = inst.all_logs(run.run_id)[-1]
    assert f"marked failed by nextbuy: its process (pid {killed.pid}) is gone" in str(failure)
    assert _mlflow_runs() == {
        run.run_id: "KILLED",
        "untagged": "KILLED",
        "another-run": "RUNNING",
    }
    # The record of the killed run is gone: the next command has nothing to close.
    assert (_home() / LOCK_FILE).read_text() == ""
    # One log per run: the killed one's stops at its header, the next one's says it ended.
    killed_log, next_log = sorted((_home() / "logs").glob("*.log"))
    assert f"-killed-run-{killed.pid}.log" in killed_log.name
    assert killed_log.read_text().count("\n") == 1
    assert "-load-thelook-" in next_log.name
    assert next_log.read_text().endswith("ended: ok\n")


def test_old_logs_are_pruned_to_the_newest(tmp_path: Path) -> None:
    for pid in range(1, 56):
        new_run_log(tmp_path, "pipeline", "header", pid=pid)
    point_latest(new_run_log(tmp_path, "pipeline", "header", pid=99))
    names = sorted(p.name for p in (tmp_path / "logs").glob("*.log") if not p.is_symlink())
    assert len(names) == 50
    assert (tmp_path / "logs" / LATEST_LINK).resolve().name.endswith("-pipeline-99.log")


def test_a_lock_taken_is_refused_to_the_next_until_released(tmp_path: Path) -> None:
    from orchestration.runlock import Holder, RunLocked

    lock = HomeLock.take(tmp_path)
    lock.record(Holder.me("nextbuy pipeline"))
    with pytest.raises(RunLocked, match=rf"pid {os.getpid()}, `nextbuy pipeline`"):
        HomeLock.take(tmp_path)
    lock.release()
    again = HomeLock.take(tmp_path)
    assert again.previous is None  # released properly: nothing to close
    again.release()


def _child_running(parent: int, word: str) -> int:
    """The pid of ``parent``'s child whose command line holds ``word``, once it runs."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        for task in Path(f"/proc/{parent}/task").glob("*"):
            for child in (task / "children").read_text().split():
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
                if word.encode() in cmdline:
                    return int(child)
        time.sleep(0.05)
    raise AssertionError(f"no child of {parent} running {word!r}")


def _gone(pid: int) -> bool:
    """Ended: no such process, or a zombie nobody has reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl are Linux's")
def test_dbt_ends_with_a_nextbuy_killed_by_sigkill(
    processes: list[subprocess.Popen[str]],
) -> None:
    """SIGKILL, the hard case: nothing of nextbuy runs any more, only the death signal
    dbt's process asked for. (SIGTERM ends nextbuy properly, as the first test shows, and
    with it dbt, by the same death signal and terminate_children.)"""
    # `dbt docs serve` serves until stopped: it never ends by itself.
    nextbuy = _start(_nextbuy("dbt", "docs", "serve", "--port", "0", "--no-browser"))
    processes.append(nextbuy)
    dbt = _child_running(nextbuy.pid, "docs serve")
    nextbuy.kill()
    nextbuy.wait(timeout=DEADLINE_SECONDS)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not _gone(dbt):
        assert time.monotonic() < deadline, f"dbt (pid {dbt}) outlived nextbuy"
        time.sleep(0.05)


def test_a_command_running_jobs_points_pipeline_log_at_its_own_log() -> None:
    import click
    from click.testing import CliRunner

    from orchestration.runlock import run_log, writes_state

    @click.command("jobs")
    @writes_state
    def jobs() -> None:
        click.echo(run_log())

    result = CliRunner().invoke(jobs, [])
    assert result.exit_code == 0, result.output
    log = Path(result.output.strip())
    assert log.name.endswith(f"-jobs-{os.getpid()}.log")
    assert (_home() / "logs" / LATEST_LINK).resolve() == log.resolve()
