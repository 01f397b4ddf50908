"""What the incremental marts were built from, kept beside them in the warehouse: the
settings that define their rows and the SQL that computes them, as one fingerprint.

An incremental build recomputes only the customers whose raw partitions changed. A
changed target brand, sequence length or examples formulation changes *every*
customer's labels or features, and so does an edit of the models' SQL (a new column,
where incremental models refuse the new schema: on_schema_change fail), yet neither
shows in the partitions. So a feature build compares the fingerprint stored with the
marts against the current one and, when they differ, rebuilds from all partitions (a
full refresh) and says which setting changed. It records the fingerprint only once its
dbt build has succeeded: a failed build leaves the last good one, and the next build
rebuilds again.

What is fingerprinted:
- every dbt var of parameters.yaml (``Parameters.dbt_vars``) except the scoring ones,
  which only campaign_audience reads, a table every scoring run rebuilds whole; a var
  added later is fingerprinted unless listed there, so the default is to rebuild;
- the SQL of the models the incremental marts are computed through (staging,
  intermediate, marts) and of every macro (the shared feature macro lives there). Their
  YAML is left out: descriptions and tests do not change a row, and a contract change
  without SQL fails the build loudly rather than silently.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from orchestration.dbt import DBT_PROJECT_DIR
from orchestration.resources import Warehouse, as_warehouse
from orchestration.settings import Parameters

# Where the fingerprint lives: beside the marts it describes, so a warehouse copied or
# replaced carries its own (the Dagster instance would keep another warehouse's).
FINGERPRINT_TABLE = "nextbuy_state.build_fingerprint"
# dbt vars that no incremental model reads (campaign_audience is rebuilt by every scoring run).
SCORING_VARS = frozenset({"audience_top_percent"})
# The dbt sources fingerprinted, relative to the dbt project.
SQL_SOURCES = ("models/staging", "models/intermediate", "models/marts", "macros")
FINGERPRINT_COLUMNS = (
    ("digest", "STRING"),
    ("settings", "STRING"),
    ("sources", "STRING"),
    ("recorded_at", "TIMESTAMP"),
)
# The incremental marts: when one exists, something was built.
BUILT_TABLES = ("marts.training_examples", "marts.customer_features")
REBUILD = "rebuilding the incremental marts from all partitions (full refresh)"


@dataclass(frozen=True)
class Fingerprint:
    """The data-defining settings (dbt var -> value) and the SQL files (path relative to
    dbt_project -> sha256) a build used."""

    settings: Mapping[str, Any]
    sources: Mapping[str, str]

    @property
    def digest(self) -> str:
        document = {"settings": dict(self.settings), "sources": dict(self.sources)}
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()

    def changes(self, before: Fingerprint) -> list[str]:
        """What differs from ``before``, one phrase per setting, then the SQL files.

        >>> old = Fingerprint({"target_brands": ["A", "B"]}, {"m.sql": "1"})
        >>> Fingerprint({"target_brands": ["C"]}, {"m.sql": "2"}).changes(old)
        ['target_brands changed ([A, B] → [C])', 'dbt SQL changed (m.sql)']
        """
        out = [
            f"{name} changed ({_shown(before.settings.get(name))} → {_shown(value)})"
            for name, value in self.settings.items()
            if before.settings.get(name) != value
        ]
        out += [
            f"{name} is no longer a setting"
            for name in before.settings
            if name not in self.settings
        ]
        paths = sorted(
            p
            for p in {*self.sources, *before.sources}
            if self.sources.get(p) != before.sources.get(p)
        )
        if paths:
            shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            out.append(f"dbt SQL changed ({shown})")
        return out


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return "(unset)" if value is None else str(value)


def current_fingerprint(params: Parameters) -> Fingerprint:
    """The fingerprint a build with ``params`` and the checked-out dbt project makes."""
    settings = {k: v for k, v in params.dbt_vars().items() if k not in SCORING_VARS}
    sources = {
        path.relative_to(DBT_PROJECT_DIR).as_posix(): hashlib.sha256(
            path.read_bytes().replace(b"\r\n", b"\n")
        ).hexdigest()
        for folder in SQL_SOURCES
        for path in sorted((DBT_PROJECT_DIR / folder).rglob("*.sql"))
    }
    return Fingerprint(json.loads(json.dumps(settings, default=str)), sources)


def stored_fingerprint(warehouse: Warehouse) -> Fingerprint | None:
    """The fingerprint recorded with the marts; None when none was."""
    if not warehouse.has_table(FINGERPRINT_TABLE):
        return None
    rows = warehouse.query(f"select settings, sources from {warehouse.relation(FINGERPRINT_TABLE)}")
    if rows.empty:
        return None
    return Fingerprint(json.loads(rows.iloc[0]["settings"]), json.loads(rows.iloc[0]["sources"]))


def record_fingerprint(warehouse: Warehouse, fingerprint: Fingerprint) -> None:
    """Keep ``fingerprint`` as the one the marts were built with (unless it already is),
    replacing the one before in one step."""
    stored = stored_fingerprint(warehouse)
    if stored is not None and stored.digest == fingerprint.digest:
        return
    row = pd.DataFrame(
        {
            "digest": [fingerprint.digest],
            # JSON: dbt var -> value; dbt_project file -> sha256.
            "settings": [json.dumps(fingerprint.settings, sort_keys=True)],
            "sources": [json.dumps(fingerprint.sources, sort_keys=True)],
            "recorded_at": [pd.Timestamp.now(tz="UTC").tz_localize(None)],
        }
    )
    warehouse.replace_rows(row, FINGERPRINT_TABLE, FINGERPRINT_COLUMNS)


def stale_reason(warehouse: Warehouse, current: Fingerprint) -> str | None:
    """Why the built marts do not match ``current``; None when they do, or when nothing
    is built yet (a first build is a whole build anyway)."""
    stored = stored_fingerprint(warehouse)
    if stored is None:
        if any(warehouse.has_table(table) for table in BUILT_TABLES):
            return (
                "the incremental marts carry no fingerprint of the settings and SQL they were "
                f"built with ({FINGERPRINT_TABLE} is absent: built before nextbuy recorded one)"
            )
        return None
    if stored.digest == current.digest:
        return None
    return "; ".join(current.changes(stored)) or "the build fingerprint changed"


def rebuild_notice(warehouse: Warehouse | Path, current: Fingerprint) -> str | None:
    """The line a feature build with ``current`` says when it must rebuild from all
    partitions, naming what changed; None when an incremental build is right (or there
    is no warehouse yet). ``warehouse``: the engine, or the DuckDB file's path."""
    reason = stale_reason(as_warehouse(warehouse), current)
    return f"{reason}: {REBUILD}" if reason else None
