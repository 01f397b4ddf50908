"""dbt parses the project once for the daily loop's commands, not once per command.

The loop's dbt commands differ in the as-of date, the day partitions and whether data
tests read only what changed. If any of those were a `--vars` entry, every command would
re-parse the whole project ("Unable to do partial parsing because config vars ... have
changed"): about 10 s of every dbt step at 1M order items. They travel as environment
variables instead (orchestration/dbt.py, dbt_env), so one parse serves all of them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from orchestration.dbt import run_dbt

REPARSED = "Unable to do partial parsing"


def _parse(warehouse: Path, *args: str, **kwargs: Any) -> str:
    return run_dbt(["parse", *args], warehouse=warehouse, **kwargs).stdout


def test_the_loops_commands_share_one_parse(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    _parse(warehouse, vars={"as_of": "2026-11-01"}, changed_only=True)
    # Another day, unscoped (the audience's command, a full refresh).
    # (--debug: dbt says which files it parses again at debug level.)
    out = _parse(warehouse, "--debug", vars={"as_of": "2026-11-02"}, changed_only=False)
    assert REPARSED not in out, out[-2000:]
    # Nor any file: the env vars are read only while executing (macros/campaign.sql), so
    # no model's parse depends on the date.
    assert "Partial parsing enabled" in out or "skipping" in out, out[-2000:]
    assert not re.search(r"[1-9][0-9]* files? changed", out), out[-2000:]
    # The check above can fail: a changed var does make dbt parse everything again.
    out = _parse(warehouse, vars={"as_of": "2026-11-02", "changed_only": True})
    assert REPARSED in out, out[-2000:]


# Each process waits at the same instant, then asks for the manifest the definitions load.
_ASK = """
import hashlib, json, sys, time
while time.time() < float(sys.argv[1]):
    time.sleep(0.01)
import orchestration.dbt as dbt
parse = dbt.run_dbt
def counted(*args, **kwargs):
    print("parsed", file=sys.stderr)
    return parse(*args, **kwargs)
dbt.run_dbt = counted
path = dbt.prepare_manifest()
data = path.read_bytes()
json.loads(data)
print(path, hashlib.sha256(data).hexdigest())
"""


def test_processes_asking_for_the_manifest_at_once_all_read_a_whole_one(tmp_path: Path) -> None:
    """The webserver and the daemon load the code location together, as pytest's workers
    import the definitions together on a fresh clone: one parses, the others wait for it,
    and none reads a manifest.json another process is still writing (CI once failed with
    orjson's "unexpected content after document" when four workers parsed at once)."""
    import os
    import subprocess
    import sys
    import time

    from orchestration.dbt import dbt_target_path
    from orchestration.environment import current_environment

    env = dict(os.environ)  # NEXTBUY_HOME is this test's own (tests/conftest.py)
    start = str(time.time() + 8)  # after every interpreter has started
    asks = [
        subprocess.Popen(
            [sys.executable, "-c", _ASK, start],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [ask.communicate(timeout=240) for ask in asks]
    assert [ask.returncode for ask in asks] == [0, 0, 0], [err[-2000:] for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 1, outs  # one manifest, one content
    assert sum(err.count("parsed") for _, err in outs) == 1, outs  # the others waited
    target = dbt_target_path(current_environment())
    # The parse's scratch target is gone; the definitions' manifest has its own folder, apart
    # from the target every dbt build rewrites.
    assert not list(target.glob("parse-*")), list(target.iterdir())
    assert (target / "manifest" / "manifest.json").exists()
    assert not (target / "manifest.json").exists()
