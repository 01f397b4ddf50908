"""The one place that decides which environment this process runs in.

`NEXTBUY_ENV` picks `local` (the default: embedded DuckDB, local MLflow store, no network,
no credentials) or `production`. All local state lives under one folder, `NEXTBUY_HOME`
(default `.nextbuy/` in the working directory), so that removing it is a full reset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

EnvironmentName = Literal["local", "production"]

# The checkout: parameters.yaml, dbt_project/, expectations/ and workspace.yaml live here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Every tool in the stack phones home unless told not to; tell them before they import.
TELEMETRY_OFF = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DAGSTER_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
}


@dataclass(frozen=True)
class Environment:
    name: EnvironmentName
    home: Path

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def dbt_target(self) -> str:
        """The target of dbt_project/profiles.yml this environment builds with."""
        return "bigquery" if self.name == "production" else "local"


class EnvironmentSettingError(ValueError):
    """An environment variable holds a value nextbuy cannot run with."""


def current_environment(environ: Mapping[str, str] = os.environ) -> Environment:
    name = environ.get("NEXTBUY_ENV", "local")
    if name not in ("local", "production"):
        raise EnvironmentSettingError(f"NEXTBUY_ENV must be 'local' or 'production', not {name!r}")
    home = Path(environ.get("NEXTBUY_HOME", ".nextbuy")).expanduser().resolve()
    return Environment(name=name, home=home)  # type: ignore[arg-type]


def warehouse_kind(environ: Mapping[str, str] = os.environ) -> str:
    """The warehouse engine's name, as Dagster shows it on the assets it holds."""
    return "bigquery" if environ.get("NEXTBUY_ENV") == "production" else "duckdb"


def disable_telemetry(environ: MutableMapping[str, str] = os.environ) -> None:
    for key, value in TELEMETRY_OFF.items():
        environ.setdefault(key, value)
