"""The MLflow run of a scored date's monitoring, and the drift kept in it.

One run per as-of date in the experiment ``<registry.experiment>-monitoring``, found
again by its ``as_of`` tag: feature_drift stores the comparison it made there
(``drift/drift.json``: every column's PSI and test and every bin's shares), and the
report adds its page, figures and metrics to the same run. The report then shows the very
numbers the drift check judged, instead of reading the date's features and scores and
comparing them again (at 10M order items that second comparison was most of the
report's time), and a report made later for an older date still has its features'
drift, which customer_features no longer holds.

The stored drift belongs to one publication of the date's scores (the model version and
the newest scored_at): after a rescoring it no longer matches, and the report compares
again until feature_drift has run for the new scores.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ml.drift import DriftReport
from orchestration.defs.scoring.assets import SCORES_TABLE
from orchestration.resources import Warehouse

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from orchestration.settings import Parameters

EXPERIMENT_SUFFIX = "-monitoring"
AS_OF_TAG = "as_of"
DRIFT_ARTIFACT = "drift/drift.json"


@dataclass(frozen=True)
class Publication:
    """Which scores of a date were compared: the model and when they were published."""

    model_name: str
    model_version: str
    scored_at: str

    def as_dict(self) -> dict[str, str]:
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "scored_at": self.scored_at,
        }


def publication(warehouse: Warehouse, as_of: dt.date) -> Publication:
    """The published scores of ``as_of``: by one model, published at one time."""
    rows = warehouse.query(
        f"select model_name, model_version, max(scored_at) as scored_at "
        f"from {warehouse.relation(SCORES_TABLE)} where as_of = ? "
        "group by model_name, model_version",
        [as_of],
    )
    if len(rows) != 1:
        raise ValueError(
            f"{SCORES_TABLE} holds scores of {len(rows)} models as of {as_of}, not one: "
            "materialise ml/customer_scores for that date first"
        )
    row = rows.iloc[0]
    return Publication(
        str(row["model_name"]),
        str(row["model_version"]),
        pd.Timestamp(row["scored_at"]).isoformat(),
    )


def monitoring_run(client: MlflowClient, experiment_id: str, as_of: dt.date) -> str:
    """The id of the date's monitoring run: the one tagged with ``as_of``, else a new one."""
    found = _find_run(client, experiment_id, as_of)
    if found is not None:
        return found
    day = as_of.isoformat()
    created = client.create_run(experiment_id, run_name=f"monitoring-{day}", tags={AS_OF_TAG: day})
    return str(created.info.run_id)


def _find_run(client: MlflowClient, experiment_id: str, as_of: dt.date) -> str | None:
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.{AS_OF_TAG} = '{as_of.isoformat()}'", max_results=1
    )
    return str(found[0].info.run_id) if found else None


def monitoring_tracker(tracking_uri: str, params: Parameters) -> Any:
    """The tracker of the monitoring experiment, ``<registry.experiment>-monitoring``."""
    from orchestration.tracking import Tracker

    return Tracker(tracking_uri, experiment=params.registry.experiment + EXPERIMENT_SUFFIX)


def _table(frame: pd.DataFrame) -> dict[str, Any]:
    """A frame as plain JSON (NaN as null), its columns named even when it has no rows."""
    split = frame.to_dict("split")  # Python's own types, not numpy's
    rows = [
        [None if isinstance(v, float) and math.isnan(v) else v for v in row]
        for row in split["data"]
    ]
    return {"columns": list(split["columns"]), "rows": rows}


def _frame(table: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame.from_records(table["rows"], columns=table["columns"])


def store_drift(
    tracking_uri: str,
    params: Parameters,
    as_of: dt.date,
    published: Publication,
    customers: int,
    scope: str,
    report: DriftReport | None,
) -> str:
    """Keeps feature_drift's comparison in the date's monitoring run; returns the run id."""
    tracker = monitoring_tracker(tracking_uri, params)
    client = tracker.client
    run_id = monitoring_run(client, tracker.experiment_id(), as_of)
    stored: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "publication": published.as_dict(),
        "customers": customers,
        "scope": scope,
        "report": None,
    }
    if report is not None:
        stored["report"] = {
            "warn_psi": report.warn_psi,
            "fail_psi": report.fail_psi,
            "columns": _table(report.columns),
            "shares": _table(report.shares),
        }
    with tempfile.TemporaryDirectory(prefix="nextbuy-drift-") as tmp:
        path = Path(tmp) / Path(DRIFT_ARTIFACT).name
        path.write_text(json.dumps(stored, default=str), encoding="utf-8")
        client.log_artifact(run_id, str(path), str(Path(DRIFT_ARTIFACT).parent))
    client.set_terminated(run_id, "FINISHED")
    return run_id


@dataclass(frozen=True)
class StoredDrift:
    customers: int
    scope: str
    report: DriftReport | None


def stored_drift(
    tracking_uri: str, params: Parameters, as_of: dt.date, published: Publication
) -> StoredDrift | None:
    """feature_drift's comparison of ``as_of``, when it was made for these very scores
    (read through the tracker's client, whose tracking URI is the registry's)."""
    tracker = monitoring_tracker(tracking_uri, params)
    client = tracker.client
    run_id = _find_run(client, tracker.experiment_id(), as_of)
    if run_id is None:
        return None
    folder = str(Path(DRIFT_ARTIFACT).parent)
    if DRIFT_ARTIFACT not in {f.path for f in client.list_artifacts(run_id, folder)}:
        return None
    with tempfile.TemporaryDirectory(prefix="nextbuy-drift-") as tmp:
        text = Path(client.download_artifacts(run_id, DRIFT_ARTIFACT, tmp)).read_text()
    stored = json.loads(text)
    if stored.get("publication") != published.as_dict():
        return None
    kept = stored["report"]
    report = None
    if kept is not None:
        report = DriftReport(
            _frame(kept["columns"]),
            _frame(kept["shares"]),
            warn_psi=kept["warn_psi"],
            fail_psi=kept["fail_psi"],
        )
    return StoredDrift(int(stored["customers"]), str(stored["scope"]), report)
