"""`kill -9` of real `nextbuy` commands at named points of the daily loop's writes: a load,
a dbt feature build, training and the publication of scores. Nothing published may change
(raw, scores, audience, the champion alias; the marts only as far as the build was
meant to go), `nextbuy doctor` must name what the kill left and how to repair it, and the
next ordinary command must succeed without repair and close what the killed one left open.

The points are the test hooks of thelook/pause_points.py (the process stops there and is
killed while stopped) and, for dbt, the progress line of a model: the whole process group
is frozen (SIGSTOP) at that line and nextbuy killed, so dbt dies mid-build by the death
signal nextbuy's child asked for (orchestration/children.py), not after a guessed delay.

One home for the whole sequence, in order: each kill starts from the state the previous
step left.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from click.testing import CliRunner

from orchestration.environment import PROJECT_ROOT
from tests.thelook.raw_state import raw_state
from thelook.pause_points import PAUSE_AT_ENV

DEADLINE_SECONDS = 300
# Seconds a killed command's children get to end by themselves.
CHILDREN_END_SECONDS = 30
# Schemas whose every table's rows a kill must leave as they were.
PUBLISHED = ("raw", "meta", "truth", "marts", "ml")
# New scores, written beside the published ones before they replace them.
STAGED = "ml.customer_scores__staged"


@dataclass
class Home:
    root: Path
    home: Path
    parameters: Path

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
            "PYTHONPATH": str(PROJECT_ROOT),
            "NEXTBUY_HOME": str(self.home),
            "NEXTBUY_PARAMETERS": str(self.parameters),
            **extra,
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """An ordinary `nextbuy` command, to its end."""
        return subprocess.run(
            [sys.executable, "-m", "orchestration.cli", *args],
            env=self.env(),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=DEADLINE_SECONDS,
        )

    def start(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        """A `nextbuy` command in a process group of its own (with its dbt child)."""
        return subprocess.Popen(
            [sys.executable, "-m", "orchestration.cli", *args],
            env=self.env(**extra),
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def _parameters() -> dict[str, Any]:
    """parameters.yaml with a quick model and windows that fit a small shop."""
    from orchestration.settings import load_parameters

    params = load_parameters().model_dump(mode="json")
    params["model"]["catboost"].update({"iterations": 50})
    params["evaluation"]["bootstrap_samples"] = 50
    params["split"].update({"test_days": 60, "validation_days": 30, "folds": 1})
    params["tuning"]["trials"] = 1
    return params


def _state(warehouse: Path) -> dict[str, tuple[int, int]]:
    """(rows, checksum) of every table of the published schemas."""
    with closing(duckdb.connect(str(warehouse), read_only=True)) as con:
        return raw_state(con, PUBLISHED)


def _champion(home: Home) -> tuple[str, list[str]]:
    """The version the champion alias names and every registered version, read with
    sqlite3 from the MLflow store."""
    with closing(sqlite3.connect(home.home / "mlflow" / "mlflow.db")) as db:
        (alias,) = db.execute("select version from registered_model_aliases").fetchone()
        versions = [str(v) for (v,) in db.execute("select version from model_versions")]
    return str(alias), sorted(versions, key=int)


def _run_ids(home: Home) -> list[str]:
    """The home's Dagster run ids, oldest first."""
    with closing(sqlite3.connect(home.home / "dagster" / "history" / "runs.db")) as db:
        return [r for (r,) in db.execute("select run_id from runs order by id")]


def _doctor(home: Home) -> dict[str, dict[str, Any]]:
    from orchestration.cli import main

    with pytest.MonkeyPatch.context() as mp:
        for name, value in home.env().items():
            mp.setenv(name, value)
        result = CliRunner().invoke(main, ["doctor", "--json"])
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    return {c["name"]: c for c in lines if not c["ok"]}


def _killed_at(process: subprocess.Popen[str], marker: str) -> str:
    """Read ``process``'s output until a line holds ``marker``; freeze its process group
    there, SIGKILL the command, let the rest of the group go on, and return the output
    the command wrote. Its children must end by themselves: dbt by the death signal it
    asked for, Dagster's log tails once they see their parent gone."""
    assert process.stdout is not None
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            os.killpg(process.pid, signal.SIGSTOP)
            process.kill()
            process.wait(timeout=DEADLINE_SECONDS)
            with suppress(ProcessLookupError):  # no one left in the group
                os.killpg(process.pid, signal.SIGCONT)
            _group_ends(process.pid)
            return "".join(seen)
    process.wait()
    raise AssertionError(f"ended (code {process.returncode}) before {marker!r}:\n{''.join(seen)}")


def _group_ends(group: int) -> None:
    deadline = time.monotonic() + CHILDREN_END_SECONDS
    while left := _group(group):
        if time.monotonic() > deadline:
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"outlived nextbuy: {left}")
        time.sleep(0.1)


def _group(group: int) -> dict[int, str]:
    """The live processes of a process group, with their command lines."""
    members = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.getpgid(int(proc.name)) != group:
                continue
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state not in ("Z", "X"):
                members[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    return {pid: cmd.decode(errors="replace")[:200] for pid, cmd in members.items()}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    root = tmp_path_factory.mktemp("kills")
    home = Home(root, root / "home", root / "parameters.yaml")
    home.parameters.write_text(yaml.safe_dump(_parameters()))
    simulated = home.run("simulate", "--users", "1000", "--end", "2024-03-31")
    assert simulated.returncode == 0, simulated.stderr
    ran = home.run("pipeline")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    yield home


def _users_update(home: Home, directory: Path) -> Path:
    """users.csv changing one customer's first name: a merge load that would change raw."""
    with closing(duckdb.connect(str(home.warehouse), read_only=True)) as con:
        con.execute(
            f"copy (select * replace ('Killed' as first_name) from raw.users "
            f"order by id limit 1) to '{directory / 'users.csv'}' (header)"
        )
    return directory / "users.csv"


def test_a_load_killed_before_its_commit_leaves_raw(shop: Home, tmp_path: Path) -> None:
    export = _users_update(shop, tmp_path)
    before, champion = _state(shop.warehouse), _champion(shop)
    killed = shop.start("load-thelook", str(export), **{PAUSE_AT_ENV: "load-writing"})
    _killed_at(killed, "paused at load-writing")
    assert _state(shop.warehouse) == before
    assert _champion(shop) == champion
    assert _doctor(shop) == {}


def test_a_feature_build_killed_mid_dbt_leaves_what_is_published(shop: Home) -> None:
    appended = shop.run("simulate", "--append-days", "2")
    assert appended.returncode == 0, appended.stderr
    before, champion = _state(shop.warehouse), _champion(shop)
    killed = shop.start("features")
    output = _killed_at(killed, "OK created sql incremental model intermediate.int_orders")
    assert "OK created sql incremental model marts.training_examples" not in output
    after = _state(shop.warehouse)
    # Published state is untouched; the marts are as the build left them mid-way, and
    # nextbuy has not recorded the new days as built, so the next build redoes them.
    assert {k: v for k, v in after.items() if not k.startswith("marts.")} == {
        k: v for k, v in before.items() if not k.startswith("marts.")
    }
    assert _champion(shop) == champion
    problems = _doctor(shop)
    assert set(problems) == {"marts vs raw", "dagster runs"}, problems
    assert problems["marts vs raw"]["repair"] == "nextbuy features"
    assert problems["dagster runs"]["repair"] == "none needed: the next nextbuy run closes them"
    assert f"features {_run_ids(shop)[-1]}" in problems["dagster runs"]["message"]


@pytest.mark.parametrize("point", ["registered", "scores-publishing"])
def test_a_retrain_killed_leaves_the_champion_scores_and_audience(shop: Home, point: str) -> None:
    before, (alias, versions) = _state(shop.warehouse), _champion(shop)
    killed = shop.start("retrain", **{PAUSE_AT_ENV: point})
    _killed_at(killed, f"paused at {point}")
    # The candidate is registered (a version no alias names; its MLflow run is finished
    # before registration); the new scores, if they got that far, only staged beside the
    # published ones: nothing else moved.
    after = _state(shop.warehouse)
    staged = after.pop(STAGED, None)
    assert (staged is not None) == (point == "scores-publishing")
    assert after == before
    new_alias, new_versions = _champion(shop)
    assert new_alias == alias
    assert new_versions[: len(versions)] == versions and len(new_versions) == len(versions) + 1
    problems = _doctor(shop)
    assert f"retrain {_run_ids(shop)[-1]}" in problems.pop("dagster runs")["message"]
    # The days the killed feature build left unbuilt (retrain builds no features).
    assert problems.pop("marts vs raw")["repair"] == "nextbuy features"
    if point == "scores-publishing":
        leftover = problems.pop("leftover tables")
        assert STAGED in leftover["message"], leftover
        assert f"drop table if exists {STAGED}" in leftover["repair"].replace('"', ""), leftover
    assert problems == {}


def test_the_next_pipeline_repairs_everything_the_kills_left(shop: Home) -> None:
    """The killed feature build's days are built, the killed runs closed, the staged
    scores replaced: doctor finds nothing."""
    ran = shop.run("pipeline")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "the previous nextbuy run (pid " in ran.stdout
    assert "marked failed" in ran.stdout
    assert _doctor(shop) == {}
    with closing(duckdb.connect(str(shop.warehouse), read_only=True)) as con:
        assert not con.execute(
            "select count(*) from information_schema.tables where table_name like '%staged'"
        ).fetchone()[0]
