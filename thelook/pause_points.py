"""Named points where a test can stop a `nextbuy` process, to kill it there.

Inert unless the environment variable ``NEXTBUY_TEST_PAUSE_AT`` names the point. Tests
(tests/orchestration/test_concurrency.py, tests/orchestration/test_kills.py) stop a real
process at a known moment instead of after a guessed delay. The points:

- ``locked``: a state-writing command holds NEXTBUY_HOME's lock (orchestration/runlock.py).
- ``load-writing``: a load's writes to raw are applied, not committed (thelook/loader.py).
- ``registered``: a candidate is registered, the gate has not decided
  (orchestration/defs/training/assets.py).
- ``scores-publishing``: an as-of date's scores are replaced, not committed
  (orchestration/resources.py); on BigQuery, staged and checked, the replacing job not
  yet sent (orchestration/bigquery_warehouse.py).

It lives here, the lowest layer, because the loader needs it and must not import
orchestration.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

# The name of the point at which the process stops.
PAUSE_AT_ENV = "NEXTBUY_TEST_PAUSE_AT"
# A file whose appearance lets a paused process go on (it waits forever when unset).
RESUME_WHEN_ENV = "NEXTBUY_TEST_RESUME_WHEN"


def pause_point(name: str) -> None:
    """Inert unless ``NEXTBUY_TEST_PAUSE_AT`` is ``name``: write the line
    ``nextbuy test hook: paused at <name> (pid <pid>)`` to stderr, then wait until the file
    ``NEXTBUY_TEST_RESUME_WHEN`` names exists (forever when unset)."""
    if os.environ.get(PAUSE_AT_ENV) != name:
        return
    os.write(2, f"nextbuy test hook: paused at {name} (pid {os.getpid()})\n".encode())
    resume = os.environ.get(RESUME_WHEN_ENV)
    while resume is None or not Path(resume).exists():
        time.sleep(0.05)
