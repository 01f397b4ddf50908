"""Which MLflow store this process talks to, and the values that store accepts.

Locally the store is a SQLite file and a folder of artifacts under ``NEXTBUY_HOME/mlflow``;
in production ``MLFLOW_TRACKING_URI`` names the tracking server. ``configure_mlflow`` sets
MLflow's process-wide tracking and registry URIs once (the Dagster resource calls it when
a run starts): the run tracker and the registry talk through their own ``MlflowClient``,
but MLflow logs and loads pyfunc models, and resolves a ``models:/<model_id>`` source
when registering, through the process-wide URIs only.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from orchestration.environment import Environment, disable_telemetry

# MLflow reads its telemetry switch when it is imported: turn it off first.
disable_telemetry()

import mlflow  # noqa: E402

# MLflow's limits: parameter values, run tag values and entity keys. Registry tags are
# kept under 5000 characters, the column size of older tracking-server databases.
MAX_PARAM_CHARS = 6000
MAX_RUN_TAG_CHARS = 8000
MAX_KEY_CHARS = 250
MAX_REGISTRY_TAG_CHARS = 5000

_UNSAFE_KEY = re.compile(r"[^\w.\- :]")


def local_tracking_uri(home: Path) -> str:
    """The SQLite store under ``home/mlflow`` (artifacts in ``home/mlflow/artifacts``)."""
    root = Path(home).absolute() / "mlflow"
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def tracking_uri(env: Environment) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the environment's local SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or local_tracking_uri(env.home)


def configure_mlflow(tracking_uri: str) -> None:
    """Point this process's MLflow at ``tracking_uri`` (tracking and registry alike) and
    turn artifact progress bars off; call once per process, before logging or loading.

    MLflow also writes the URIs to ``MLFLOW_TRACKING_URI``/``MLFLOW_REGISTRY_URI``, so
    subprocesses inherit them.
    """
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    # Progress bars are noise in the orchestrator's logs.
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"


def require_configured(tracking_uri: str) -> None:
    """Fail before MLflow writes to or reads from another store than ``tracking_uri``."""
    configured = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    if configured != (tracking_uri, tracking_uri):
        raise RuntimeError(
            f"MLflow is configured for {configured[0]!r}, not {tracking_uri!r}: "
            f"call configure_mlflow({tracking_uri!r}) once before logging or loading models"
        )


def artifact_location(uri: str) -> str | None:
    """Artifacts next to a SQLite store (``<dir>/artifacts``); the server's default else."""
    if not uri.startswith("sqlite:///") or ":memory:" in uri:
        return None
    database = Path(uri.removeprefix("sqlite:///")).absolute()
    location = database.parent / "artifacts"
    location.mkdir(parents=True, exist_ok=True)
    return location.as_uri()


def safe_key(name: str) -> str:
    """A param, metric or tag key MLflow accepts (characters, length)."""
    return _UNSAFE_KEY.sub("_", str(name))[:MAX_KEY_CHARS]


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, non-finite floats as null (MLflow's
    ``log_dict`` would write NaN, which is not JSON, and stringify numpy integers)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
