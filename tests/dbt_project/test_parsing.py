"""dbt parses the project once for the daily loop's commands, not once per command.

The loop's dbt commands differ in the as-of date, the day partitions and whether data
tests read only what changed. If any of those were a `--vars` entry, every command would
re-parse the whole project ("Unable to do partial parsing because config vars ... have
changed"): about 10 s of every dbt step at 1M order items. They travel as environment
variables instead (orchestration/dbt.py, dbt_env), so one parse serves all of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestration.dbt import run_dbt

REPARSED = "Unable to do partial parsing"


def _parse(warehouse: Path, **kwargs: Any) -> str:
    return run_dbt(["parse"], warehouse=warehouse, **kwargs).stdout


def test_the_loops_commands_share_one_parse(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    _parse(warehouse, vars={"as_of": "2026-11-01"}, changed_only=True)
    # Another day, unscoped (the audience's command, a full refresh).
    out = _parse(warehouse, vars={"as_of": "2026-11-02"}, changed_only=False)
    assert REPARSED not in out, out[-2000:]
    # The check above can fail: a changed var does make dbt parse everything again.
    out = _parse(warehouse, vars={"as_of": "2026-11-02", "changed_only": True})
    assert REPARSED in out, out[-2000:]
