"""docs/faults.md is the fault campaign of issue 11 as a suite: every row names the test
that holds its case. This keeps the table true: a row without a test, or naming a test
that no longer exists (renamed, deleted, a parameter dropped), fails here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = ROOT / "docs" / "faults.md"
ROW = re.compile(r"^\| ([A-Z]\d+) \|")
NODE = re.compile(r"`(tests/[\w/]+\.py::\w+(?:\[[^\]]+\])?)`")
# At least the campaign's 79 bad inputs and 12 kill / concurrency runs.
CAMPAIGN_CASES = 79 + 12


def _rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in CAMPAIGN.read_text().splitlines():
        if match := ROW.match(line):
            assert match[1] not in rows, f"{match[1]} twice in {CAMPAIGN}"
            rows[match[1]] = NODE.findall(line)
    return rows


def _collected(session: pytest.Session, files: set[str]) -> set[str]:
    """Node ids of the tests in ``files``: this session's when it collected them all (as
    `make test` does), else a collection of those files alone."""
    ids = {item.nodeid for item in session.items}
    if files <= {nodeid.split("::", 1)[0] for nodeid in ids}:
        return ids
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    return {line for line in listed.stdout.splitlines() if "::" in line}


def test_every_case_of_the_campaign_names_a_test_that_exists(
    request: pytest.FixtureRequest,
) -> None:
    rows = _rows()
    assert len(rows) >= CAMPAIGN_CASES, f"{len(rows)} cases in {CAMPAIGN}"
    assert not [case for case, nodes in rows.items() if not nodes], "rows without a test"
    named = {node for nodes in rows.values() for node in nodes}
    collected = _collected(request.session, {node.split("::", 1)[0] for node in named})
    functions = {nodeid.split("[", 1)[0] for nodeid in collected}
    missing = sorted(
        node for node in named if node not in (collected if "[" in node else functions)
    )
    assert not missing, f"named in {CAMPAIGN} but not collected: {missing}"
