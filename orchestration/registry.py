"""nextbuy's thin layer over MLflow tracking and the MLflow model registry.

One training run = one MLflow run of the ``registry.experiment`` experiment, holding the
parameters, the data windows, the metrics, the figures and tables, and the scorer (a
CatBoost ``PropensityModel`` or a rule baseline from ``ml.baselines``) logged as a pyfunc
model. Registered scorers are versions of ``registry.model_name``; the ``champion`` alias
(``registry.champion_alias``) names the one scoring uses. Only the promotion gate
(``promote``) and ``nextbuy rollback`` (``rollback``) move the alias, and both append to a
champion history kept as a tag of the registered model, so a rollback knows where to go.

Locally the store is a SQLite file and a folder of artifacts under ``NEXTBUY_HOME/mlflow``;
in production ``MLFLOW_TRACKING_URI`` names the tracking server. Every call goes through
this Registry's own ``MlflowClient``; the few MLflow functions that only read the global
tracking URI (logging and loading a pyfunc model) run inside ``_mlflow_uris``, which sets it
for the call and restores it afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from orchestration.environment import Environment, disable_telemetry

# MLflow reads its telemetry switch when it is imported: turn it off first.
disable_telemetry()

import mlflow  # noqa: E402
import mlflow.pyfunc  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import LoggedModelOutput, Metric, Param  # noqa: E402
from mlflow.entities.model_registry import ModelVersion  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.protos.databricks_pb2 import (  # noqa: E402
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)
from mlflow.pyfunc.model import PythonModel  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MODEL_ARTIFACT = "model"
# MLflow's limits: parameter values, run tag values and entity keys. Registry tags are
# kept under 5000 characters, the column size of older tracking-server databases.
MAX_PARAM_CHARS = 6000
MAX_RUN_TAG_CHARS = 8000
MAX_KEY_CHARS = 250
MAX_REGISTRY_TAG_CHARS = 5000
# The registered-model tag holding the champion history (a JSON list, oldest first), and
# how much of a reason each entry keeps (the full reason is on the version's gate tags).
HISTORY_TAG = "champion_history"
HISTORY_REASON_CHARS = 200
# Pinned in the logged model's requirements.txt: MLflow infers nothing (inference loads
# the model in a subprocess), and nextbuy itself must be installed wherever it is loaded.
REQUIREMENTS = ("mlflow", "catboost", "pandas", "numpy", "cloudpickle")

_UNSAFE_KEY = re.compile(r"[^\w.\- :]")
_GLOBAL_URI_LOCK = threading.RLock()


# Notices MLflow logs on every pyfunc save that say nothing here: the scorers are
# nextbuy's own objects, pickled and loaded by nextbuy, and logged without a signature on
# purpose (a schema inferred from a few rows would reject NULLs the scorers accept).
_EXPECTED_NOTICES = ("serialized using CloudPickle", "model signature cannot be inferred")


def _unexpected(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(notice in message for notice in _EXPECTED_NOTICES)


logging.getLogger("mlflow.pyfunc").addFilter(_unexpected)


def local_tracking_uri(home: Path) -> str:
    """The SQLite store under ``home/mlflow`` (artifacts in ``home/mlflow/artifacts``)."""
    root = Path(home).absolute() / "mlflow"
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def tracking_uri(env: Environment) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the environment's local SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or local_tracking_uri(env.home)


def _artifact_location(uri: str) -> str | None:
    """Artifacts next to a SQLite store (``<dir>/artifacts``); the server's default else."""
    if not uri.startswith("sqlite:///") or ":memory:" in uri:
        return None
    database = Path(uri.removeprefix("sqlite:///")).absolute()
    location = database.parent / "artifacts"
    location.mkdir(parents=True, exist_ok=True)
    return location.as_uri()


class RegistryError(RuntimeError):
    """The registry cannot do what was asked (no champion, nothing to roll back to...)."""


@dataclass(frozen=True)
class ModelRef:
    """One registered model version: what scored, where it came from, how to load it."""

    name: str
    version: str
    run_id: str
    # "model" (a trained candidate) or "baseline" (a rule made champion as a fallback).
    kind: str
    scorer_name: str
    uri: str

    def label(self) -> str:
        """Short human label, e.g. ``nextbuy-brand-propensity v3 (catboost)``."""
        return f"{self.name} v{self.version} ({self.scorer_name})"


class ScorerModel(PythonModel):
    """The pyfunc wrapper of an ``ml`` scorer: predict returns one score per row."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer

    # A DataFrame hint: MLflow infers no schema from it, so nothing is enforced on input.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """One score per row of ``model_input`` (a features DataFrame)."""
        return _scores(self.scorer, model_input)


def _scores(scorer: Any, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(scorer.predict_proba(frame), dtype=np.float64).ravel()


@dataclass(frozen=True)
class LoadedScorer:
    """A registered scorer loaded back: ``predict(frame)`` gives one float per row.

    It calls the scorer directly, so no MLflow schema enforcement touches the features
    (NULLs, strings and extra columns pass through as they do in training).
    """

    ref: ModelRef
    scorer: Any

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return _scores(self.scorer, frame)


class Registry:
    """The experiment runs are logged to and the registered model the champion belongs to."""

    def __init__(self, tracking_uri: str, *, experiment: str, model_name: str, alias: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.model_name = model_name
        self.alias = alias
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._experiment_id: str | None = None

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any], env: Environment) -> Registry:
        """The registry named by parameters.yaml's ``registry`` section, in ``env``'s store."""
        settings = params["registry"]
        return cls(
            tracking_uri(env),
            experiment=settings["experiment"],
            model_name=settings["model_name"],
            alias=settings["champion_alias"],
        )

    def __repr__(self) -> str:
        return f"Registry({self.tracking_uri!r}, model_name={self.model_name!r})"

    # Tracking -------------------------------------------------------------------------

    def experiment_id(self) -> str:
        """The experiment's id, created on first use (artifacts beside a SQLite store)."""
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None:
                self._experiment_id = found.experiment_id
            else:
                try:
                    self._experiment_id = self.client.create_experiment(
                        self.experiment, artifact_location=_artifact_location(self.tracking_uri)
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

        ``params`` may nest (dicts become dotted keys, lists JSON); ``data_window`` is
        logged as ``data.*`` params and ``data_window.json``; metrics that are not finite
        numbers are skipped; figures are saved as PNGs under ``figures/`` and closed;
        tables go to ``tables/<name>.csv``; the input example to ``input_example.json``.
        """
        scorer_name = str(scorer.name)
        run = self.client.create_run(
            self.experiment_id(),
            run_name=run_name,
            tags={
                **{_key(k): _truncate(str(v), MAX_RUN_TAG_CHARS) for k, v in tags.items()},
                "kind": kind,
                "scorer_name": scorer_name,
            },
        )
        run_id: str = run.info.run_id
        try:
            self._log_contents(run_id, params, data_window, metrics, figures, tables)
            self.client.log_text(run_id, _example_json(input_example), "input_example.json")
            self._log_model(run_id, scorer, kind)
        except BaseException:
            with suppress(Exception):  # keep the original error
                self.client.set_terminated(run_id, "FAILED")
            raise
        finally:
            _close(figures)
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def _log_contents(
        self,
        run_id: str,
        params: Mapping[str, Any],
        data_window: Mapping[str, str],
        metrics: Mapping[str, Any],
        figures: Mapping[str, Figure],
        tables: Mapping[str, pd.DataFrame],
    ) -> None:
        flat = {**flatten_params(params), **flatten_params(data_window, prefix="data.")}
        finite = finite_metrics(metrics)
        self.client.log_batch(
            run_id,
            params=[Param(k, v) for k, v in flat.items()],
            metrics=[Metric(k, v, timestamp=_now_ms(), step=0) for k, v in finite.items()],
        )
        self.client.log_text(run_id, _json(dict(data_window)), "data_window.json")
        for name, figure in figures.items():
            self.client.log_figure(run_id, figure, f"figures/{_file_name(name, '.png')}")
        for name, table in tables.items():
            self.client.log_text(
                run_id, table.to_csv(index=False), f"tables/{_file_name(name, '.csv')}"
            )

    def _log_model(self, run_id: str, scorer: Any, kind: str) -> None:
        # A LoggedModel made by this client (no run-context or git lookups), filled by
        # pyfunc.log_model, which reads only the global tracking URI.
        logged = self.client.create_logged_model(
            self.experiment_id(),
            name=MODEL_ARTIFACT,
            source_run_id=run_id,
            tags={"kind": kind, "scorer_name": str(scorer.name)},
            model_type=kind,
        )
        with _mlflow_uris(self.tracking_uri):
            mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=ScorerModel(scorer),
                pip_requirements=pip_requirements(),
                model_id=logged.model_id,
            )
        self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        self.client.set_tag(run_id, "model_id", logged.model_id)

    # Registry -------------------------------------------------------------------------

    def register(self, run_id: str) -> ModelRef:
        """Register the run's model as a new version of ``model_name`` (its kind and scorer
        name are the run's, as `log_run` tagged them)."""
        run = self.client.get_run(run_id)
        tags = run.data.tags
        kind, scorer_name = tags.get("kind"), tags.get("scorer_name")
        outputs = run.outputs.model_outputs if run.outputs else []
        model_id = tags.get("model_id") or next((o.model_id for o in outputs), None)
        if model_id is None or kind is None or scorer_name is None:
            raise RegistryError(
                f"run {run_id} holds no model logged by Registry.log_run to register as {self.model_name}"
            )
        self._ensure_registered_model()
        # MLflow's SQL registry resolves a models:/<model_id> source through the global
        # tracking URI, not this client's.
        with _mlflow_uris(self.tracking_uri):
            version = self.client.create_model_version(
                self.model_name,
                source=f"models:/{model_id}",
                run_id=run_id,
                model_id=model_id,
                tags={"kind": kind, "scorer_name": scorer_name},
                description=f"{scorer_name} ({kind}) from run {run.info.run_name or run_id}",
            )
        return self._ref(version)

    def _ensure_registered_model(self) -> None:
        try:
            self.client.create_registered_model(
                self.model_name,
                description=(
                    "nextbuy brand propensity: the probability that a customer's next order "
                    f"holds a target brand. The '{self.alias}' alias is the version that "
                    "scores customers; only the promotion gate and `nextbuy rollback` move it."
                ),
            )
        except MlflowException as e:
            if e.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise

    def champion(self) -> ModelRef | None:
        """The version the alias points at; None before the first promotion."""
        registered = self._registered_model()
        if registered is None or self.alias not in (registered.aliases or {}):
            return None
        return self.version(str(registered.aliases[self.alias]))

    def version(self, version: str) -> ModelRef:
        """One version of ``model_name``."""
        try:
            return self._ref(self.client.get_model_version(self.model_name, version))
        except MlflowException as e:
            if e.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                raise RegistryError(f"{self.model_name} has no version {version}") from e
            raise

    def versions(self) -> list[ModelRef]:
        """Every registered version of ``model_name``, oldest first."""
        found = self.client.search_model_versions(f"name = '{self.model_name}'")
        return sorted((self._ref(v) for v in found), key=lambda ref: int(ref.version))

    def load_scorer(self, ref: ModelRef) -> LoadedScorer:
        """The registered scorer, unwrapped from its pyfunc model."""
        with tempfile.TemporaryDirectory(prefix="nextbuy-model-") as tmp:
            with _mlflow_uris(self.tracking_uri):
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=ref.uri,
                    dst_path=tmp,
                    tracking_uri=self.tracking_uri,
                    registry_uri=self.tracking_uri,
                )
                model = mlflow.pyfunc.load_model(local)
            python_model = model.unwrap_python_model()
        if not isinstance(python_model, ScorerModel):
            raise RegistryError(f"{ref.label()} is not a nextbuy scorer ({type(python_model)})")
        return LoadedScorer(ref=ref, scorer=python_model.scorer)

    def record_decision(self, ref: ModelRef, decision: Mapping[str, Any]) -> None:
        """Keep the gate's decision on the version: ``gate.*`` tags and its run's
        ``gate_decision_v<version>.json``."""
        at = _now()
        self.client.set_model_version_tag(
            ref.name, ref.version, "gate.promote", str(bool(decision.get("promote"))).lower()
        )
        self.client.set_model_version_tag(
            ref.name,
            ref.version,
            "gate.reason",
            _truncate(str(decision.get("reason", "")), MAX_REGISTRY_TAG_CHARS),
        )
        self.client.set_model_version_tag(ref.name, ref.version, "gate.decided_at", at)
        document = {"model": ref.name, "version": ref.version, "decided_at": at, **decision}
        self.client.log_text(ref.run_id, _json(document), f"gate_decision_v{ref.version}.json")

    def promote(self, ref: ModelRef, reason: str) -> None:
        """Point the alias at ``ref`` and note it in the champion history."""
        self.client.set_registered_model_alias(self.model_name, self.alias, ref.version)
        self._append_history({"action": "promote", "version": ref.version, "reason": reason})

    def rollback(self) -> ModelRef:
        """Move the alias back to the champion before the current one; returns it."""
        current = self.champion()
        if current is None:
            raise RegistryError(
                f"{self.model_name} has no '{self.alias}' alias: there is nothing to roll back"
            )
        for version in reversed(_champion_stack(self.history())):
            if version == current.version:
                continue
            try:
                target = self.version(version)
            except RegistryError:  # deleted since: look further back
                continue
            self.client.set_registered_model_alias(self.model_name, self.alias, target.version)
            self._append_history(
                {
                    "action": "rollback",
                    "version": target.version,
                    "from": current.version,
                    "reason": f"rollback from v{current.version}",
                }
            )
            return target
        raise RegistryError(
            f"{self.model_name} '{self.alias}' is v{current.version} and there is no earlier "
            "champion to roll back to"
        )

    def history(self) -> list[dict[str, Any]]:
        """Every promotion and rollback of the alias, oldest first."""
        registered = self._registered_model()
        if registered is None or HISTORY_TAG not in registered.tags:
            return []
        loaded = json.loads(registered.tags[HISTORY_TAG])
        return list(loaded) if isinstance(loaded, list) else []

    def _append_history(self, entry: dict[str, Any]) -> None:
        entry = {
            **entry,
            "reason": _truncate(str(entry.get("reason", "")), HISTORY_REASON_CHARS),
            "at": _now(),
        }
        entries = [*self.history(), entry]
        # Oldest entries go first when the tag would outgrow the registry's limit.
        text = _json(entries, indent=None)
        while len(text) > MAX_REGISTRY_TAG_CHARS and len(entries) > 1:
            entries = entries[1:]
            text = _json(entries, indent=None)
        self.client.set_registered_model_tag(self.model_name, HISTORY_TAG, text)

    def _registered_model(self) -> Any:
        try:
            return self.client.get_registered_model(self.model_name)
        except MlflowException as e:
            if e.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                return None
            raise

    def _ref(self, version: ModelVersion) -> ModelRef:
        tags = version.tags or {}
        return ModelRef(
            name=version.name,
            version=str(version.version),
            run_id=version.run_id or "",
            kind=tags.get("kind", "model"),
            scorer_name=tags.get("scorer_name", ""),
            uri=f"models:/{version.name}/{version.version}",
        )


def _champion_stack(history: list[dict[str, Any]]) -> list[str]:
    """Replay the history: a promotion pushes its version, a rollback pops the rolled-back
    champion (so repeated rollbacks walk further back)."""
    stack: list[str] = []
    for entry in history:
        version = str(entry.get("version"))
        if entry.get("action") == "rollback":
            if stack and stack[-1] == str(entry.get("from")):
                stack.pop()
            if not stack or stack[-1] != version:
                stack.append(version)
        else:
            stack.append(version)
    return stack


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
            text = _json(list(value), indent=None)
        elif isinstance(value, np.generic):
            text = str(value.item())
        else:
            text = str(value)
        flat[_key(name)] = _truncate(text, MAX_PARAM_CHARS)
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
            finite[_key(key)] = number
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


@contextmanager
def _mlflow_uris(uri: str) -> Iterator[None]:
    """Set MLflow's global tracking and registry URIs for a call (artifact progress bars
    off), then restore them and the environment variables MLflow writes them to."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    with _GLOBAL_URI_LOCK:
        saved_env = {name: os.environ.get(name) for name in names}
        saved_tracking = tracking_utils._tracking_uri
        saved_registry = registry_utils._registry_uri
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        # Progress bars are noise in the orchestrator's logs.
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        try:
            yield
        finally:
            mlflow.set_tracking_uri(saved_tracking)  # type: ignore[arg-type]
            registry_utils._registry_uri = saved_registry
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _close(figures: Mapping[str, Figure]) -> None:
    if not figures:
        return
    import matplotlib.pyplot as plt

    for figure in figures.values():
        plt.close(figure)


def _key(name: str) -> str:
    """A param, metric or tag key MLflow accepts (characters, length)."""
    return _UNSAFE_KEY.sub("_", str(name))[:MAX_KEY_CHARS]


def _file_name(name: str, suffix: str) -> str:
    stem = re.sub(r"[^\w.\-]", "_", name)
    return stem if stem.endswith(suffix) else f"{stem}{suffix}"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, non-finite floats as null."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _json(value: Any, indent: int | None = 2) -> str:
    return json.dumps(_jsonable(value), indent=indent, allow_nan=False)


def _example_json(frame: pd.DataFrame) -> str:
    return frame.to_json(orient="split", index=False, date_format="iso") or "{}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)
