"""Training runs as MLflow runs: what a run learnt from, how it scored, and the scorer.

One training run = one MLflow run of the tracker's experiment, holding the parameters,
the data windows, the metrics, the figures and tables, and the scorer (a CatBoost
``PropensityModel`` or a rule baseline from ``ml.baselines``) logged as a pyfunc model,
which orchestration/registry.py registers. ``configure_mlflow`` (orchestration/
mlflow_store.py) must have pointed MLflow at the same store first.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from collections.abc import Mapping
from contextlib import suppress
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from orchestration.environment import disable_telemetry
from orchestration.mlflow_store import (
    MAX_PARAM_CHARS,
    MAX_RUN_TAG_CHARS,
    artifact_location,
    jsonable,
    require_configured,
    safe_key,
    truncate,
)

# MLflow reads its telemetry switch when it is imported: turn it off first.
disable_telemetry()

import mlflow.pyfunc  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import LoggedModelOutput, Metric, Param  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode  # noqa: E402
from mlflow.pyfunc.model import PythonModel  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MODEL_ARTIFACT = "model"
# Pinned in the logged model's requirements.txt: MLflow infers nothing (inference loads
# the model in a subprocess), and nextbuy itself must be installed wherever it is loaded.
REQUIREMENTS = ("mlflow", "catboost", "pandas", "numpy", "cloudpickle")

# Notices MLflow logs on every pyfunc save that say nothing here: the scorers are
# nextbuy's own objects, pickled and loaded by nextbuy, and logged without a signature on
# purpose (a schema inferred from a few rows would reject NULLs the scorers accept).
_EXPECTED_NOTICES = ("serialized using CloudPickle", "model signature cannot be inferred")


def _unexpected(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(notice in message for notice in _EXPECTED_NOTICES)


logging.getLogger("mlflow.pyfunc").addFilter(_unexpected)


class ScorerModel(PythonModel):
    """The pyfunc wrapper of an ``ml`` scorer: predict returns one score per row."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer

    # A DataFrame hint: MLflow infers no schema from it, so nothing is enforced on input.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """One score per row of ``model_input`` (a features DataFrame)."""
        return scores(self.scorer, model_input)


def scores(scorer: Any, frame: pd.DataFrame) -> np.ndarray:
    """The scorer's probabilities for ``frame``, one float64 per row."""
    return np.asarray(scorer.predict_proba(frame), dtype=np.float64).ravel()


class Tracker:
    """The experiment training runs are logged to, in the store at ``tracking_uri``."""

    def __init__(self, tracking_uri: str, *, experiment: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._experiment_id: str | None = None

    def __repr__(self) -> str:
        return f"Tracker({self.tracking_uri!r}, experiment={self.experiment!r})"

    def experiment_id(self) -> str:
        """The experiment's id, created on first use (artifacts beside a SQLite store)."""
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None:
                self._experiment_id = found.experiment_id
            else:
                try:
                    self._experiment_id = self.client.create_experiment(
                        self.experiment, artifact_location=artifact_location(self.tracking_uri)
                    )
                except MlflowException as e:  # created meanwhile by another process
                    if e.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                        raise
                    created = self.client.get_experiment_by_name(self.experiment)
                    assert created is not None
                    self._experiment_id = created.experiment_id
        return str(self._experiment_id)

    def artifact_uri(self, run_id: str) -> str:
        """Where a run's artifacts (figures/, tables/, the model) are stored."""
        return str(self.client.get_run(run_id).info.artifact_uri)

    def log_run(
        self,
        *,
        run_name: str,
        scorer: Any,
        kind: str,
        params: Mapping[str, Any],
        data_window: Mapping[str, str],
        metrics: Mapping[str, Any],
        figures: Mapping[str, Figure],
        tables: Mapping[str, pd.DataFrame],
        input_example: pd.DataFrame,
        tags: Mapping[str, str],
    ) -> str:
        """Log one finished training run with its scorer as a pyfunc model; returns the run id.

        ``kind`` is "model" (a trained candidate) or "baseline" (a rule); ``params`` may
        nest (dicts become dotted keys, lists JSON); ``data_window`` is logged as
        ``data.*`` params and ``data_window.json``; metrics that are not finite numbers
        are skipped; figures are saved as PNGs under ``figures/`` and closed; tables go
        to ``tables/<name>.csv``; the input example to ``input_example.json``.
        """
        require_configured(self.tracking_uri)
        run = self.client.create_run(
            self.experiment_id(),
            run_name=run_name,
            tags={
                **{safe_key(k): truncate(str(v), MAX_RUN_TAG_CHARS) for k, v in tags.items()},
                "kind": kind,
                "scorer_name": str(scorer.name),
            },
        )
        run_id: str = run.info.run_id
        try:
            self._log_values(run_id, params, data_window, metrics)
            self._log_artifacts(run_id, figures, tables, input_example)
            self._log_model(run_id, scorer, kind)
        except BaseException:
            with suppress(Exception):  # keep the original error
                self.client.set_terminated(run_id, "FAILED")
            raise
        finally:
            _close(figures)
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def _log_values(
        self,
        run_id: str,
        params: Mapping[str, Any],
        data_window: Mapping[str, str],
        metrics: Mapping[str, Any],
    ) -> None:
        flat = {**flatten_params(params), **flatten_params(data_window, prefix="data.")}
        finite = finite_metrics(metrics)
        self.client.log_batch(
            run_id,
            params=[Param(k, v) for k, v in flat.items()],
            metrics=[Metric(k, v, timestamp=_now_ms(), step=0) for k, v in finite.items()],
        )
        self.client.log_dict(run_id, jsonable(data_window), "data_window.json")

    def _log_artifacts(
        self,
        run_id: str,
        figures: Mapping[str, Figure],
        tables: Mapping[str, pd.DataFrame],
        input_example: pd.DataFrame,
    ) -> None:
        for name, figure in figures.items():
            self.client.log_figure(run_id, figure, f"figures/{_file_name(name, '.png')}")
        for name, table in tables.items():
            self.client.log_text(
                run_id, table.to_csv(index=False), f"tables/{_file_name(name, '.csv')}"
            )
        self.client.log_text(run_id, _example_json(input_example), "input_example.json")

    def _log_model(self, run_id: str, scorer: Any, kind: str) -> None:
        # A LoggedModel made by this client (no run-context or git lookups), filled by
        # pyfunc.log_model through the URI configure_mlflow set.
        logged = self.client.create_logged_model(
            self.experiment_id(),
            name=MODEL_ARTIFACT,
            source_run_id=run_id,
            tags={"kind": kind, "scorer_name": str(scorer.name)},
            model_type=kind,
        )
        mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=ScorerModel(scorer),
            pip_requirements=pip_requirements(),
            model_id=logged.model_id,
        )
        self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        self.client.set_tag(run_id, "model_id", logged.model_id)


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """MLflow params from nested settings: dotted keys, lists as JSON, values truncated."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
            continue
        if isinstance(value, str):
            text = value
        elif isinstance(value, list | tuple):
            text = json.dumps(jsonable(list(value)), allow_nan=False)
        elif isinstance(value, np.generic):
            text = str(value.item())
        else:
            text = str(value)
        flat[safe_key(name)] = truncate(text, MAX_PARAM_CHARS)
    return flat


def finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The metrics that are finite numbers, as floats, under MLflow-safe keys."""
    finite: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            finite[safe_key(key)] = number
    return finite


def pip_requirements() -> list[str]:
    """The installed versions of what a logged scorer needs to load and predict."""
    pins = []
    for package in REQUIREMENTS:
        try:
            pins.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def _close(figures: Mapping[str, Figure]) -> None:
    if not figures:
        return
    import matplotlib.pyplot as plt

    for figure in figures.values():
        plt.close(figure)


def _file_name(name: str, suffix: str) -> str:
    stem = re.sub(r"[^\w.\-]", "_", name)
    return stem if stem.endswith(suffix) else f"{stem}{suffix}"


def _example_json(frame: pd.DataFrame) -> str:
    return frame.to_json(orient="split", index=False, date_format="iso") or "{}"


def _now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)
