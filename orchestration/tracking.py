"""Training runs as MLflow runs: what a run learnt from, how it scored, and the scorer.

Kept whole: one job, recording a training run in MLflow and linking to it; the UI link
helpers at the end (about 40 lines) read the same tracking URI and are the one part
that could move if another consumer of MLflow links appears.

One training run = one MLflow run of the tracker's experiment, holding the parameters,
the data windows, the metrics, the figures and tables, and the scorer (a CatBoost
``PropensityModel`` or a rule baseline from ``ml.baselines``) logged as a pyfunc model,
which orchestration/registry.py registers. ``configure_mlflow`` (orchestration/
mlflow_store.py) must have pointed MLflow at the same store first.

What people see in MLflow's UI is set here too: the experiment is tagged as a machine
learning experiment (``mlflow.experimentKind``), a run spans the step it records and
carries a one-line description (its note), the logged model has a signature and an input
example, and ``run_url`` / ``model_version_url`` / ``experiment_url`` link to the UI at
``mlflow_ui_url()``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from contextlib import suppress
from importlib import metadata
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

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
from orchestration.ui import UiPorts

# MLflow reads its telemetry switch when it is imported: turn it off first.
disable_telemetry()

import mlflow.pyfunc  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import LoggedModelOutput, Metric, Param  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.models import ModelSignature, infer_signature  # noqa: E402
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode  # noqa: E402
from mlflow.pyfunc.model import PythonModel  # noqa: E402
from mlflow.types.schema import ColSpec, Schema  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MODEL_ARTIFACT = "model"
# Pinned in the logged model's requirements.txt: MLflow infers nothing (inference loads
# the model in a subprocess), and nextbuy itself must be installed wherever it is loaded.
REQUIREMENTS = ("mlflow", "catboost", "river", "pandas", "numpy", "cloudpickle")

# Rows of the logged model's input example, and rows its signature is inferred from (the
# types come from the columns' dtypes; every column is then marked optional, so NULLs the
# sample happens not to hold pass MLflow's schema enforcement).
INPUT_EXAMPLE_ROWS = 5
SIGNATURE_ROWS = 1000

# Notices MLflow logs on every pyfunc save that say nothing here: the scorers are
# nextbuy's own objects, pickled and loaded by nextbuy, and the input example is checked
# against the signature on every save.
_EXPECTED_NOTICES = ("serialized using CloudPickle", "Validating input example")

# What MLflow's UI reads from tags. The kind labels the experiment as machine learning,
# not GenAI (MLflow 3 UIs that read it open such an experiment on its runs; the UI of
# MLflow 3.17 decides by its "GenAI / Model training" switch instead, GenAI unless the
# browser or the link chose otherwise: hence _ML_WORKFLOW in every link). The note is a
# run's description.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
NOTE_TAG = "mlflow.note.content"
# A saved view of the experiment's runs list (the "Views" menu of MLflow 3's runs page,
# kept as an experiment tag; a link with ``viewStateShareKey`` opens it). MLflow has no
# setting for the columns the list shows by default: they are the browser's own state.
RUNS_VIEW_ID = "nextbuy-test-metrics"
RUNS_VIEW_NAME = "nextbuy: test metrics"
_VIEW_TAG_PREFIX = "mlflow.sharedViewState."

# The MLflow UI: `nextbuy ui` serves it on loopback; NEXTBUY_MLFLOW_UI_URL names another.
MLFLOW_UI_URL_ENV = "NEXTBUY_MLFLOW_UI_URL"
DEFAULT_MLFLOW_UI_URL = f"http://127.0.0.1:{UiPorts().mlflow}"
# MLflow 3's UI opens in its GenAI mode (traces first, no model registry in the side bar)
# unless the link or the browser chose machine learning.
_ML_WORKFLOW = {"workflowType": "machine_learning"}


def _unexpected(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(notice in message for notice in _EXPECTED_NOTICES)


logging.getLogger("mlflow.pyfunc").addFilter(_unexpected)


class ScorerModel(PythonModel):
    """The pyfunc wrapper of an ``ml`` scorer: predict returns one score per row."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer

    # A DataFrame hint: MLflow infers no schema from it; the logged signature is the
    # inferred one (orchestration.registry calls the scorer itself, without enforcement).
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
        """The experiment's id, created on first use (artifacts beside a SQLite store) and
        tagged as a machine learning experiment (``EXPERIMENT_KIND_TAG``)."""
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                try:
                    self.client.create_experiment(
                        self.experiment,
                        artifact_location=artifact_location(self.tracking_uri),
                        tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
                    )
                except MlflowException as e:  # created meanwhile by another process
                    if e.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                        raise
                found = self.client.get_experiment_by_name(self.experiment)
                assert found is not None
            if EXPERIMENT_KIND_TAG not in (found.tags or {}):  # made by an older nextbuy
                self.client.set_experiment_tag(
                    found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
                )
            self._experiment_id = found.experiment_id
        return str(self._experiment_id)

    def save_runs_view(self, metrics: Sequence[str]) -> str:
        """Keep the experiment's saved runs view (``RUNS_VIEW_NAME``): the runs list with
        the duration, the model, the scorer's name, these metrics in this order and the
        description as columns; returns its id, for ``experiment_url(..., view=...)``.
        Rewritten only when its columns change."""
        columns = [
            "attributes.`Models`",
            "tags.`scorer_name`",
            *(f"metrics.`{safe_key(metric)}`" for metric in metrics),
            "attributes.`Description`",
        ]
        # The UI's column ids: the duration column has no selectable key, only its id.
        state = {"selectedColumns": columns, "columnOrder": ["duration", *columns]}
        text = json.dumps(state, separators=(",", ":"))
        key = f"{_VIEW_TAG_PREFIX}{RUNS_VIEW_ID}"
        experiment = self.client.get_experiment(self.experiment_id())
        saved = _saved_view(experiment.tags.get(key))
        if saved is not None and saved.get("state") == text:
            return RUNS_VIEW_ID
        now = _now_ms()
        created = saved.get("createdAt", now) if saved is not None else now
        envelope = {"name": RUNS_VIEW_NAME, "createdAt": created, "updatedAt": now, "state": text}
        self.client.set_experiment_tag(
            experiment.experiment_id, key, truncate(json.dumps(envelope), MAX_RUN_TAG_CHARS)
        )
        return RUNS_VIEW_ID

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
        description: str = "",
        start_time: dt.datetime | None = None,
        end_time: dt.datetime | None = None,
        features: pd.DataFrame | None = None,
    ) -> str:
        """Log one finished training run with its scorer as a pyfunc model; returns the run id.

        ``kind`` is "model" (a trained candidate) or "baseline" (a rule); ``params`` may
        nest (dicts become dotted keys, lists JSON); ``data_window`` is logged as
        ``data.*`` params and ``data_window.json``; metrics that are not finite numbers
        are skipped; figures are saved as PNGs under ``figures/`` and closed; tables go
        to ``tables/<name>.csv``; the input example to ``input_example.json``.

        ``description`` is the run's note (MLflow's description); the run spans
        ``start_time`` (when the step it records began; now by default) to ``end_time``
        (now by default). The model's signature is inferred from the scorer's columns
        of ``features`` (``input_example`` by default) and its scores; its input example
        is the first rows of those columns in ``input_example``.
        """
        require_configured(self.tracking_uri)
        run_tags = {safe_key(k): truncate(str(v), MAX_RUN_TAG_CHARS) for k, v in tags.items()}
        if description:
            run_tags[NOTE_TAG] = truncate(description, MAX_RUN_TAG_CHARS)
        run = self.client.create_run(
            self.experiment_id(),
            start_time=_ms(start_time) if start_time is not None else None,
            run_name=run_name,
            tags={**run_tags, "kind": kind, "scorer_name": str(scorer.name)},
        )
        run_id: str = run.info.run_id
        try:
            self._log_values(run_id, params, data_window, metrics)
            self._log_artifacts(run_id, figures, tables, input_example)
            self._log_model(
                run_id,
                scorer,
                kind,
                features if features is not None else input_example,
                input_example,
            )
        except BaseException:
            with suppress(Exception):  # keep the original error
                self.client.set_terminated(run_id, "FAILED")
            raise
        finally:
            _close(figures)
        end = _ms(end_time) if end_time is not None else _now_ms()
        self.client.set_terminated(run_id, "FINISHED", end_time=end)
        return run_id

    def log_child_runs(
        self, parent_run_id: str, name: str, rows: list[dict[str, Any]], metrics: tuple[str, ...]
    ) -> list[str]:
        """One finished child run of ``parent_run_id`` per row (e.g. a tuning trial): the
        ``metrics`` keys of the row as metrics, the rest as params; MLflow's UI nests
        them under the parent. Returns their run ids."""
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        ids = []
        for number, row in enumerate(rows):
            run = self.client.create_run(
                self.experiment_id(),
                run_name=f"{name}-{number}",
                tags={MLFLOW_PARENT_RUN_ID: parent_run_id, "kind": name},
            )
            run_id = run.info.run_id
            values = {k: v for k, v in row.items() if k in metrics}
            self._log_values(run_id, {k: v for k, v in row.items() if k not in metrics}, {}, values)
            self.client.set_terminated(run_id, "FINISHED")
            ids.append(run_id)
        return ids

    def end_now(self, run_id: str) -> None:
        """Move a finished run's end to now: what the step does for the run after
        ``log_run`` (its drift reference, its registration) is part of what it records."""
        self.client.set_terminated(run_id, "FINISHED", end_time=_now_ms())

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
        if data_window:
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

    def _log_model(
        self,
        run_id: str,
        scorer: Any,
        kind: str,
        features: pd.DataFrame,
        input_example: pd.DataFrame,
    ) -> None:
        # A LoggedModel made by this client (no run-context or git lookups), filled by
        # pyfunc.log_model through the URI configure_mlflow set.
        logged = self.client.create_logged_model(
            self.experiment_id(),
            name=MODEL_ARTIFACT,
            source_run_id=run_id,
            tags={"kind": kind, "scorer_name": str(scorer.name)},
            model_type=kind,
        )
        with warnings.catch_warnings():
            # MLflow's own use of a pandas API deprecated in pandas 3, when it saves the
            # input example: nothing nextbuy can change.
            warnings.filterwarnings("ignore", message="Operation with range is deprecated")
            mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=ScorerModel(scorer),
                pip_requirements=pip_requirements(),
                model_id=logged.model_id,
                signature=signature(scorer, feature_frame(scorer, features)),
                input_example=integers_as_doubles(
                    feature_frame(scorer, input_example).head(INPUT_EXAMPLE_ROWS)
                ),
            )
        self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        self.client.set_tag(run_id, "model_id", logged.model_id)


def feature_frame(scorer: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``frame`` the scorer reads: a model's ``feature_names_in_``, a rule's
    ``column``; the whole frame for a scorer that names none (the overall rate)."""
    names = getattr(scorer, "feature_names_in_", None)
    if names is None:
        column = getattr(scorer, "column", None)
        names = [column] if isinstance(column, str) else []
    columns = [str(name) for name in names if str(name) in frame.columns]
    return frame[columns] if columns else frame


def signature(scorer: Any, features: pd.DataFrame) -> ModelSignature:
    """The scorer's signature: its input columns and their types as inferred from the
    first ``SIGNATURE_ROWS`` rows (integers as doubles), each optional (scorers take
    NULLs), and one float score per row."""
    sample = features.head(SIGNATURE_ROWS)
    inferred = infer_signature(integers_as_doubles(sample), scores(scorer, sample))
    inputs = inferred.inputs
    if isinstance(inputs, Schema) and inputs.has_input_names():
        inputs = Schema(
            [
                ColSpec(spec.type, spec.name, required=False)
                for spec in inputs.inputs
                if isinstance(spec, ColSpec)
            ]
        )
    return ModelSignature(inputs=inputs, outputs=inferred.outputs)


def integers_as_doubles(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer columns as doubles, as MLflow advises for columns that may hold NULL (a
    NULL turns an integer column into floats, which an integer schema refuses)."""
    integers = frame.select_dtypes(include="integer").columns
    return frame.astype(dict.fromkeys(integers, "float64")) if len(integers) else frame


def mlflow_ui_url(tracking_uri: str | None = None) -> str:
    """The MLflow UI's base URL: ``NEXTBUY_MLFLOW_UI_URL`` when set, else the tracking
    server's when ``tracking_uri`` is one, else `nextbuy ui`'s (http://127.0.0.1:5000)."""
    configured = os.environ.get(MLFLOW_UI_URL_ENV, "").strip()
    if configured:
        return configured.rstrip("/")
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return DEFAULT_MLFLOW_UI_URL


def experiment_url(
    experiment_id: str, *, view: str | None = None, tracking_uri: str | None = None
) -> str:
    """The experiment's runs list in MLflow's UI, in its saved ``view`` when given
    (``Tracker.save_runs_view``)."""
    query = {**_ML_WORKFLOW, **({"viewStateShareKey": view} if view else {})}
    return f"{mlflow_ui_url(tracking_uri)}/#/experiments/{experiment_id}/runs?{urlencode(query)}"


def run_url(experiment_id: str, run_id: str, *, tracking_uri: str | None = None) -> str:
    """One run's page in MLflow's UI."""
    return (
        f"{mlflow_ui_url(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}"
        f"?{urlencode(_ML_WORKFLOW)}"
    )


def model_version_url(name: str, version: str, *, tracking_uri: str | None = None) -> str:
    """One registered model version's page in MLflow's UI."""
    return (
        f"{mlflow_ui_url(tracking_uri)}/#/models/{quote(name, safe='')}/versions/{version}"
        f"?{urlencode(_ML_WORKFLOW)}"
    )


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
    return _ms(dt.datetime.now(dt.UTC))


def _ms(moment: dt.datetime) -> int:
    """Milliseconds since the epoch; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _saved_view(value: str | None) -> dict[str, Any] | None:
    if not value:
        return None
    try:
        loaded = json.loads(value)
    except ValueError:
        return None
    return loaded if isinstance(loaded, dict) else None
