"""The drift reference of a model, and the scored population it is compared with.

The reference is recorded when a model is trained: the population it is trained to score
(marts.customer_features as of the training run's date) with the model's own scores on
it, binned by ``ml.drift.DriftMonitor`` and logged as ``drift_reference.json`` in the
model's MLflow run. Like is compared with like: training_examples hold customers at the
moment of a purchase, customer_features every customer on an ordinary day, so their
days-since features differ even when nothing changes (on the stationary thelook data a
train-window reference puts days_since_signup at PSI ~0.5 against the scored customers).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ml.drift import DriftMonitor, DriftReport
from orchestration.defs.scoring.assets import CUSTOMER_FEATURES, SCORES_TABLE
from orchestration.resources import Warehouse
from orchestration.settings import ModelSettings, MonitoringSettings, Parameters

if TYPE_CHECKING:
    from mlflow import MlflowClient

REFERENCE_ARTIFACT = "drift_reference.json"
# The model's score, monitored beside the features as one more numeric column.
SCORE = "score"


@dataclass(frozen=True)
class MonitoringSample:
    """The customers monitoring reads: every customer when there are at most
    ``monitoring.sample_size``, else a systematic sample of about that many, every
    ``stride``-th customer id (``mod(customer_id, stride) = 0``). Drift and realised performance
    are statistics of a distribution: a couple of hundred thousand customers estimate
    them as well as every one does (PSI's sampling noise is about bins / n), while the
    cost of reading and binning the whole population grows with the shop (5.5M customers
    at 10M order items). Ids are assigned at sign-up, so the sample spreads evenly over
    sign-up dates, and the same customers are followed from day to day while the stride
    holds."""

    stride: int
    population: int

    @classmethod
    def of(cls, population: int, size: int) -> MonitoringSample:
        return cls(stride=max(1, math.ceil(population / size)), population=population)

    @classmethod
    def counted(
        cls,
        warehouse: Warehouse,
        relation: str,
        size: int,
        where: str = "true",
        parameters: list[Any] | None = None,
    ) -> MonitoringSample:
        rows = warehouse.query(
            f"select count(*) as n from {warehouse.relation(relation)} where {where}",
            parameters or [],
        )
        return cls.of(int(rows.iloc[0]["n"]) if len(rows) else 0, size)

    def where(self, column: str = "customer_id") -> str:
        """The SQL condition that keeps the sample's rows."""
        return "true" if self.stride == 1 else f"mod({column}, {self.stride:d}) = 0"

    def describe(self, sampled: int | None = None) -> str:
        if self.stride == 1:
            return f"every customer ({self.population:,})"
        n = f"{sampled:,}" if sampled is not None else f"about {self.population // self.stride:,}"
        return (
            f"{n} of {self.population:,} customers (mod(customer_id, {self.stride}) = 0; "
            "monitoring.sample_size)"
        )


def drift_reference(
    features: pd.DataFrame,
    scores: Any,
    model: ModelSettings,
    monitoring: MonitoringSettings,
) -> dict[str, Any]:
    """The reference of the model's features and of ``scores`` (one per row of
    ``features``), as plain JSON types (``DriftMonitor.reference_dict``)."""
    monitor = DriftMonitor(
        [*model.numeric_features, SCORE],
        list(model.categorical_features),
        list(model.text_features),
        warn_psi=monitoring.warn_psi,
        fail_psi=monitoring.fail_psi,
        bins=monitoring.bins,
        top_tokens=monitoring.top_tokens,
    )
    return monitor.fit(features.assign(**{SCORE: scores})).reference_dict()


def compare(
    reference: Mapping[str, Any], current: pd.DataFrame, monitoring: MonitoringSettings
) -> DriftReport:
    """Drift of ``current`` (features and ``score``) from a stored reference, under
    today's thresholds."""
    monitor = DriftMonitor.from_reference_dict(
        reference, warn_psi=monitoring.warn_psi, fail_psi=monitoring.fail_psi
    )
    return monitor.compare(current)


def record_drift_reference(
    warehouse: Warehouse,
    client: MlflowClient,
    run_id: str,
    scorer: Any,
    params: Parameters,
) -> str:
    """Log the reference of ``scorer`` (a trained candidate or a rule) on today's
    customer_features in its run; returns what was recorded, for the asset's metadata."""
    from orchestration.tracking import scores

    if not warehouse.has_table(CUSTOMER_FEATURES):
        return f"none: {CUSTOMER_FEATURES} is not built, so drift cannot be monitored"
    sample = MonitoringSample.counted(warehouse, CUSTOMER_FEATURES, params.monitoring.sample_size)
    features = warehouse.read_table(CUSTOMER_FEATURES, order_by="customer_id", where=sample.where())
    if features.empty:
        return f"none: {CUSTOMER_FEATURES} has no customer, so drift cannot be monitored"
    reference = drift_reference(features, scores(scorer, features), params.model, params.monitoring)
    client.log_dict(run_id, reference, REFERENCE_ARTIFACT)
    return f"{REFERENCE_ARTIFACT}: {sample.describe(len(features))} as of {_single_as_of(features)}"


def load_drift_reference(client: MlflowClient, run_id: str) -> dict[str, Any] | None:
    """The run's drift reference; None when the run has none (trained before drift
    monitoring). Read through ``client``, whose tracking URI is the registry's
    (mlflow.artifacts.load_dict would use the process-wide one)."""
    if REFERENCE_ARTIFACT not in {f.path for f in client.list_artifacts(run_id)}:
        return None
    with tempfile.TemporaryDirectory(prefix="nextbuy-drift-") as tmp:
        path = client.download_artifacts(run_id, REFERENCE_ARTIFACT, tmp)
        reference: dict[str, Any] = json.loads(Path(path).read_text())
    return reference


@dataclass(frozen=True)
class ScoredPopulation:
    """One as-of date's customers: their features and ``score``, and who scored them."""

    as_of: dt.date
    frame: pd.DataFrame
    model_name: str
    model_version: str
    sample: MonitoringSample


def scored_population(warehouse: Warehouse, as_of: dt.date, sample_size: int) -> ScoredPopulation:
    """customer_features (which must be computed as of ``as_of``) joined with the scores
    of that date, for the customers of the monitoring sample."""
    sample = MonitoringSample.counted(warehouse, CUSTOMER_FEATURES, sample_size)
    features = warehouse.read_table(CUSTOMER_FEATURES, order_by="customer_id", where=sample.where())
    if features.empty:
        raise ValueError(f"{CUSTOMER_FEATURES} is empty: there is no scored customer to monitor")
    computed = _single_as_of(features)
    if computed != as_of:
        raise ValueError(
            f"{CUSTOMER_FEATURES} is computed as of {computed}, not {as_of}: the drift of "
            f"{as_of} can only be measured while its features are the current ones"
        )
    scored, name, version = scores_of(warehouse, as_of, sample)
    frame = features.merge(scored, on="customer_id", how="inner", validate="one_to_one")
    return ScoredPopulation(
        as_of=as_of,
        frame=frame,
        model_name=name,
        model_version=version,
        sample=sample,
    )


def scores_of(
    warehouse: Warehouse, as_of: dt.date, sample: MonitoringSample | None = None
) -> tuple[pd.DataFrame, str, str]:
    """customer_id and score of one date of ml.customer_scores (of the sample's customers,
    or all), and the model that scored it."""
    if not warehouse.has_table(SCORES_TABLE):
        raise LookupError(f"{SCORES_TABLE} does not exist: materialise ml/customer_scores first")
    where = sample.where() if sample is not None else "true"
    scored = warehouse.query(
        f"select customer_id, score, model_name, model_version "
        f"from {warehouse.relation(SCORES_TABLE)} where as_of = ? and {where} "
        "order by customer_id",
        [as_of],
    )
    models = scored[["model_name", "model_version"]].drop_duplicates()
    if len(models) != 1:
        raise ValueError(
            f"{SCORES_TABLE} holds scores of {len(models)} models as of {as_of}, not one: "
            "materialise ml/customer_scores for that date first"
        )
    name, version = (str(v) for v in models.iloc[0])
    return scored[["customer_id", SCORE]], name, version


def _single_as_of(features: pd.DataFrame) -> dt.date:
    from orchestration.defs.scoring.assets import features_as_of

    return features_as_of(features)
