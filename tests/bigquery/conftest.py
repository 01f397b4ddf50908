"""The BigQuery emulator, started once per session for every test of tests/bigquery.

These tests run by `make test-bigquery`, not `make test`. When the emulator's environment
cannot be installed (no uv, no package index) they are skipped with the reason, except
in CI (CI=true), where that is a failure: there the proof must run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bigquery.emulator import Emulator, EmulatorSetupError, ensure_venv, running_emulator


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """A running, empty emulator; its ``env`` points BigQuery clients at it."""
    try:
        ensure_venv()
    except EmulatorSetupError as e:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI: the BigQuery emulator could not be set up: {e}", pytrace=False)
        pytest.skip(f"the BigQuery emulator could not be set up: {e}")
    workdir: Path = tmp_path_factory.mktemp("bqemulator")
    with running_emulator(workdir) as emulator:
        yield emulator
