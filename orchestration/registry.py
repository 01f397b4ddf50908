"""The champion: scorer versions in the MLflow model registry and the alias scoring reads.

A run logged by orchestration/tracking.py is registered as a version of ``model_name``;
the alias (``champion``) names the version that scores customers, and only the promotion
gate (``promote``) and ``nextbuy rollback`` (``rollback``) move it. MLflow keeps no
history of an alias (mlflow/mlflow#2169), so every move is kept on the version it moved
the alias to, as numbered event tags ``<alias>.<n>.<field>``: ``champion.3.action``
(promote or rollback), ``champion.3.at``, ``champion.3.reason`` and, for a rollback,
``champion.3.from``. ``history`` reads them back from all versions in event order; a
version can be champion more than once, hence numbered events rather than one
``promoted_at`` per version. A deleted version takes its events with it: rollback skips
it either way.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from orchestration.environment import disable_telemetry
from orchestration.mlflow_store import (
    MAX_REGISTRY_TAG_CHARS,
    MAX_RUN_TAG_CHARS,
    jsonable,
    now_iso,
    require_configured,
    truncate,
)
from orchestration.tracking import NOTE_TAG, ScorerModel, scores

# MLflow reads its telemetry switch when it is imported: turn it off first.
disable_telemetry()

import mlflow.pyfunc  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities.model_registry import ModelVersion  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.protos.databricks_pb2 import (  # noqa: E402
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)

# The fields of one champion event, as tags ``<alias>.<n>.<field>``; the action is
# written last, so an event cut short by a crash is not read back as a move.
EVENT_FIELDS = ("at", "reason", "from", "action")


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


@dataclass(frozen=True)
class LoadedScorer:
    """A registered scorer loaded back: ``predict(frame)`` gives one float per row.

    It calls the scorer directly, so no MLflow schema enforcement touches the features
    (NULLs, strings and extra columns pass through as they do in training).
    """

    ref: ModelRef
    scorer: Any

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return scores(self.scorer, frame)


class Registry:
    """The registered model of ``model_name`` and its ``alias``, in the store at ``tracking_uri``."""

    def __init__(self, tracking_uri: str, *, model_name: str, alias: str) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.alias = alias
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._event_tag = re.compile(rf"{re.escape(alias)}\.(\d+)\.({'|'.join(EVENT_FIELDS)})")

    def __repr__(self) -> str:
        return f"Registry({self.tracking_uri!r}, model_name={self.model_name!r})"

    def register(self, run_id: str) -> ModelRef:
        """Register the run's model as a new version of ``model_name`` (its kind and scorer
        name are the run's, as `Tracker.log_run` tagged them; its description the run's
        note when it has one)."""
        run = self.client.get_run(run_id)
        tags = run.data.tags
        kind, scorer_name = tags.get("kind"), tags.get("scorer_name")
        outputs = run.outputs.model_outputs if run.outputs else []
        model_id = tags.get("model_id") or next((o.model_id for o in outputs), None)
        if model_id is None or kind is None or scorer_name is None:
            raise RegistryError(
                f"run {run_id} holds no model logged by Tracker.log_run to register as {self.model_name}"
            )
        self._ensure_registered_model()
        # MLflow's SQL registry resolves a models:/<model_id> source through the
        # process-wide tracking URI, not this client's.
        require_configured(self.tracking_uri)
        version = self.client.create_model_version(
            self.model_name,
            source=f"models:/{model_id}",
            run_id=run_id,
            model_id=model_id,
            tags={"kind": kind, "scorer_name": scorer_name},
            description=truncate(
                tags.get(NOTE_TAG)
                or f"{scorer_name} ({kind}) from run {run.info.run_name or run_id}",
                MAX_REGISTRY_TAG_CHARS,
            ),
        )
        return self._ref(version)

    def describe(self, ref: ModelRef, description: str) -> None:
        """One line on what the version is and what became of it, as the version's
        description and its run's note (e.g. once the gate decided)."""
        self.client.update_model_version(
            ref.name, ref.version, description=truncate(description, MAX_REGISTRY_TAG_CHARS)
        )
        if ref.run_id:
            self.client.set_tag(ref.run_id, NOTE_TAG, truncate(description, MAX_RUN_TAG_CHARS))

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
        return sorted(
            (self._ref(v) for v in self._model_versions()), key=lambda ref: int(ref.version)
        )

    def load_scorer(self, ref: ModelRef) -> LoadedScorer:
        """The registered scorer, unwrapped from its pyfunc model."""
        require_configured(self.tracking_uri)
        with tempfile.TemporaryDirectory(prefix="nextbuy-model-") as tmp:
            model = mlflow.pyfunc.load_model(ref.uri, dst_path=tmp)
            python_model = model.unwrap_python_model()
        if not isinstance(python_model, ScorerModel):
            raise RegistryError(f"{ref.label()} is not a nextbuy scorer ({type(python_model)})")
        return LoadedScorer(ref=ref, scorer=python_model.scorer)

    def record_decision(self, ref: ModelRef, decision: Mapping[str, Any]) -> None:
        """Keep the gate's decision on the version: ``gate.*`` tags and its run's
        ``gate_decision_v<version>.json``."""
        at = now_iso()
        tags = {
            "gate.promote": str(bool(decision.get("promote"))).lower(),
            "gate.reason": truncate(str(decision.get("reason", "")), MAX_REGISTRY_TAG_CHARS),
            "gate.decided_at": at,
        }
        for key, value in tags.items():
            self.client.set_model_version_tag(ref.name, ref.version, key, value)
        document = {"model": ref.name, "version": ref.version, "decided_at": at, **decision}
        self.client.log_dict(ref.run_id, jsonable(document), f"gate_decision_v{ref.version}.json")

    def promote(self, ref: ModelRef, reason: str) -> None:
        """Point the alias at ``ref`` and note it in the champion history."""
        self.client.set_registered_model_alias(self.model_name, self.alias, ref.version)
        self._record_move(ref.version, {"action": "promote", "reason": reason})

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
            self._record_move(
                target.version,
                {
                    "action": "rollback",
                    "from": current.version,
                    "reason": f"rollback from v{current.version}",
                },
            )
            return target
        raise RegistryError(
            f"{self.model_name} '{self.alias}' is v{current.version} and there is no earlier "
            "champion to roll back to"
        )

    def history(self) -> list[dict[str, Any]]:
        """Every promotion and rollback of the alias, oldest first: dicts of action,
        version, reason, at, and ``from`` for a rollback."""
        events = self._events()
        return [
            {
                "action": fields["action"],
                "version": version,
                **({"from": fields["from"]} if "from" in fields else {}),
                "reason": fields.get("reason", ""),
                "at": fields.get("at", ""),
            }
            for (_, version), fields in sorted(events.items(), key=_event_order)
            if "action" in fields
        ]

    def _record_move(self, version: str, event: Mapping[str, str]) -> None:
        number = max((n for n, _ in self._events()), default=0) + 1
        fields = {
            **event,
            "reason": truncate(event.get("reason", ""), MAX_REGISTRY_TAG_CHARS),
            "at": now_iso(),
        }
        for field in EVENT_FIELDS:
            if field in fields:
                key = f"{self.alias}.{number}.{field}"
                self.client.set_model_version_tag(self.model_name, version, key, fields[field])

    def _events(self) -> dict[tuple[int, str], dict[str, str]]:
        """The champion event tags of every version, by (event number, version)."""
        events: dict[tuple[int, str], dict[str, str]] = {}
        for version in self._model_versions():
            for key, value in (version.tags or {}).items():
                if match := self._event_tag.fullmatch(key):
                    event = events.setdefault((int(match[1]), str(version.version)), {})
                    event[match[2]] = value
        return events

    def _model_versions(self) -> list[ModelVersion]:
        return list(self.client.search_model_versions(f"name = '{self.model_name}'"))

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


def _event_order(item: tuple[tuple[int, str], dict[str, str]]) -> tuple[int, int]:
    (number, version), _ = item
    return number, int(version)


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
