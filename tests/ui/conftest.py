"""What the browser tests need from pytest: each test's outcome, for a screenshot of the
page a failed test left behind."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

PHASE_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report


def failed(request: Any) -> bool:
    """Whether the requesting test's call failed (read in a fixture's teardown)."""
    reports = request.node.stash.get(PHASE_REPORTS, {})
    return "call" in reports and reports["call"].failed
