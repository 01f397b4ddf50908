"""The model online scoring uses: whatever the registry's champion alias points at.

The batch reads the alias when it scores (orchestration/defs/scoring/assets.py); the
server reads it when it starts and again every few seconds (serving/service.py), and
swaps a newly loaded champion in whole, so a promotion or `nextbuy rollback` reaches
online scores without a restart and no request sees a half-loaded model. A ``Champion``
also carries what `GET /model` says about it: its scorer, training window and the gate's
decision, as the registry recorded them. An online champion (ml/online.py) comes with
its one learner (serving/online.py): it scores with the learner's published copy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from orchestration.environment import Environment
from orchestration.registry import LoadedScorer, ModelRef, Registry
from orchestration.settings import RegistrySettings
from serving.online import OnlineLearner


@dataclass(frozen=True)
class Champion:
    """A loaded champion and what the registry says about it."""

    ref: ModelRef
    scorer: LoadedScorer
    info: dict[str, Any]
    loaded_at: dt.datetime
    # The online champion's learner (None: a batch model or a rule, which do not learn).
    learner: OnlineLearner | None = None

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """One score per row of a customer_features frame, as the batch scores it (an
        online champion: as it is after what /learn has fed it)."""
        if self.learner is not None:
            return self.learner.predict(frame)
        return self.scorer.predict(frame)

    @property
    def summary(self) -> dict[str, str]:
        """The model as a response names it."""
        return {
            "name": self.ref.name,
            "version": self.ref.version,
            "scorer": self.ref.scorer_name,
        }


def open_registry(env: Environment, settings: RegistrySettings) -> Registry:
    """The environment's registry, with this process's MLflow pointed at its store (pyfunc
    models load only through the process-wide URI)."""
    from orchestration.mlflow_store import configure_mlflow, tracking_uri

    uri = tracking_uri(env)
    configure_mlflow(uri)
    return Registry(uri, model_name=settings.model_name, alias=settings.champion_alias)


def load_champion(registry: Registry, ref: ModelRef) -> Champion:
    """Load ``ref``'s scorer and gather its description for `GET /model`; an online
    model gets its learner (started: the caller stops it when it retires the champion)."""
    from ml.online import OnlineModel

    scorer = registry.load_scorer(ref)
    info = describe(registry, ref)
    online = isinstance(scorer.scorer, OnlineModel)
    return Champion(
        ref=ref,
        scorer=scorer,
        info=info,
        loaded_at=dt.datetime.now(dt.UTC),
        learner=OnlineLearner(scorer.scorer, name=f"learner-v{ref.version}") if online else None,
    )


def describe(registry: Registry, ref: ModelRef) -> dict[str, Any]:
    """The version's kind and scorer, its training window (the run's ``data.*``
    parameters), the gate's decision on it (``gate.*`` tags) and why it is champion (its
    newest champion event)."""
    version = registry.client.get_model_version(ref.name, ref.version)
    tags = dict(version.tags or {})
    window: dict[str, str] = {}
    if ref.run_id:
        params = registry.client.get_run(ref.run_id).data.params
        window = {
            k.removeprefix("data."): v for k, v in sorted(params.items()) if k.startswith("data.")
        }
    gate = None
    if "gate.promote" in tags:
        gate = {
            "promote": tags["gate.promote"] == "true",
            "reason": tags.get("gate.reason", ""),
            "decided_at": tags.get("gate.decided_at", ""),
        }
    events = [event for event in registry.history() if event["version"] == ref.version]
    return {
        "name": ref.name,
        "version": ref.version,
        "alias": registry.alias,
        "kind": ref.kind,
        "scorer": ref.scorer_name,
        "run_id": ref.run_id,
        "uri": ref.uri,
        "description": version.description or "",
        "training_window": window,
        "gate": gate,
        "champion_since": events[-1] if events else None,
    }
