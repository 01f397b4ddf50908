"""report: one self-contained HTML page per scored as-of date (feature drift, the score's
distribution against the scoring model's reference, realised performance over time),
written under NEXTBUY_HOME/reports/monitoring/ and logged to MLflow, with its key plots
shown in the Dagster UI.

MLflow: the date's monitoring run (runs.py), so a re-materialised date (outcomes keep
arriving) replaces its artifacts (report.html, figures/, tables/) and adds a new value to
the history of its metrics rather than making another run.

The drift shown is the one monitoring/feature_drift judged, with each bin's shares, kept
in the same run (runs.py). Only when there is none for the date's current scores (the
drift asset has not run since they were published) is it compared here: the features of
a date exist only while customer_features is computed as of it (it holds one date), so
for an older date only the score's drift is computed, from ml.customer_scores, and the
page says so.
"""

import datetime as dt
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from matplotlib.figure import Figure

from ml.drift import DriftReport
from ml.plots import distribution_figure, psi_figure, realised_figure
from orchestration.defs.monitoring.checks import DRIFT_KEY
from orchestration.defs.monitoring.page import data_uri, render_html
from orchestration.defs.monitoring.performance import REALISED_KEY, Judgement, judge
from orchestration.defs.monitoring.realised import (
    Performance,
    gives_probabilities,
    load_performance,
)
from orchestration.defs.monitoring.reference import (
    SCORE,
    MonitoringSample,
    compare,
    load_drift_reference,
    scores_of,
)
from orchestration.defs.monitoring.runs import (
    monitoring_run,
    monitoring_tracker,
    publication,
    stored_drift,
)
from orchestration.defs.scoring.assets import CUSTOMER_FEATURES, SCORES_TABLE
from orchestration.environment import current_environment
from orchestration.partitions import AS_OF_DATES
from orchestration.registry import ModelRef, Registry
from orchestration.resources import ParametersResource, RegistryResource, Warehouse
from orchestration.settings import Parameters
from orchestration.tracking import run_url

REPORT_KEY = dg.AssetKey(["monitoring", "report"])
REPORT_ARTIFACT = "report.html"
# Small enough to embed three plots in an event of the Dagster instance.
DPI = 72


def report_folder() -> Path:
    return current_environment().home / "reports" / "monitoring"


@dataclass(frozen=True)
class DateDrift:
    """The drift of one scored date from its model's reference, or why there is none."""

    as_of: dt.date
    model: ModelRef
    customers: int
    report: DriftReport | None
    # What was compared, or why nothing was: for people.
    scope: str


def report_drift(
    warehouse: Warehouse, reg: Registry, tracking_uri: str, params: Parameters, as_of: dt.date
) -> DateDrift:
    """The drift feature_drift judged for the date's current scores, else compared now."""
    published = publication(warehouse, as_of)
    if published.model_name != reg.model_name:
        raise ValueError(
            f"the scores as of {as_of} are of {published.model_name}, not of the registry's "
            f"{reg.model_name}"
        )
    stored = stored_drift(tracking_uri, params, as_of, published)
    if stored is None:
        return date_drift(warehouse, reg, params, as_of)
    model = reg.version(published.model_version)
    return DateDrift(as_of, model, stored.customers, stored.report, stored.scope)


def date_drift(
    warehouse: Warehouse, reg: Registry, params: Parameters, as_of: dt.date
) -> DateDrift:
    """The features (while customer_features is computed as of ``as_of``) and scores of
    the date against the reference of the model that scored them."""
    sample = MonitoringSample.counted(
        warehouse, SCORES_TABLE, params.monitoring.sample_size, "as_of = ?", [as_of]
    )
    scores, name, version = scores_of(warehouse, as_of, sample)
    if name != reg.model_name:
        raise ValueError(
            f"the scores as of {as_of} are of {name}, not of the registry's {reg.model_name}"
        )
    model = reg.version(version)
    reference = load_drift_reference(reg.client, model.run_id)
    if reference is None:
        scope = f"not measured: {model.label()} has no drift reference (trained before drift monitoring)"
        return DateDrift(as_of, model, len(scores), None, scope)
    features = features_as_of(warehouse, as_of, sample)
    if features is not None:
        frame = features.merge(scores, on="customer_id", how="inner", validate="one_to_one")
        scope = f"features and scores of {sample.describe(len(frame))}"
    else:
        # Only the score's bins: compare() needs every reference column in the frame.
        reference = {**reference, "columns": {SCORE: reference["columns"][SCORE]}}
        frame = scores
        scope = (
            f"the score only, of {sample.describe(len(scores))}: {CUSTOMER_FEATURES} is no "
            f"longer computed as of {as_of} (the "
            f"feature table of that date is in {DRIFT_KEY.to_user_string()}'s "
            "materialisation for it)"
        )
    return DateDrift(as_of, model, len(scores), compare(reference, frame, params.monitoring), scope)


def features_as_of(
    warehouse: Warehouse, as_of: dt.date, sample: MonitoringSample
) -> pd.DataFrame | None:
    """customer_features of the sample's customers when it is computed as of ``as_of``,
    else None."""
    if not warehouse.has_table(CUSTOMER_FEATURES):
        return None
    row = warehouse.query(
        f"select min(as_of) as first, max(as_of) as last "
        f"from {warehouse.relation(CUSTOMER_FEATURES)}"
    ).iloc[0]
    dates = {pd.Timestamp(v).date() for v in row if not pd.isna(v)}
    if dates != {as_of}:
        return None
    return warehouse.read_table(CUSTOMER_FEATURES, order_by="customer_id", where=sample.where())


@dg.asset(
    key=REPORT_KEY,
    group_name="monitoring",
    partitions_def=AS_OF_DATES,
    deps=[DRIFT_KEY, REALISED_KEY],
    kinds={"html", "mlflow"},
)
def monitoring_report(
    context: dg.AssetExecutionContext,
    warehouse: dg.ResourceParam[Warehouse],
    parameters: ParametersResource,
    registry: RegistryResource,
) -> Iterator[dg.MaterializeResult]:  # type: ignore[type-arg]
    """The monitoring page of the partition's as-of date: feature drift and the score's
    distribution against the scoring model's reference, realised performance of every
    scored date up to it beside each model's evaluation-time AUC and lift, and the
    customers still pending. A file under NEXTBUY_HOME/reports/monitoring/, the same page
    in the date's MLflow run (experiment `<registry.experiment>-monitoring`), and the
    plots in this asset's metadata."""
    params = parameters.load()
    as_of = dt.date.fromisoformat(context.partition_key)
    reg = registry.open(params.registry)
    drift = report_drift(warehouse, reg, registry.tracking_uri, params, as_of)
    performance = load_performance(warehouse, reg, params, as_of)
    judgement = judge(performance, params.monitoring, drift.model.label(), gives_probabilities(reg))
    figures = report_figures(drift, performance)
    pngs = {name: png(figure) for name, figure in figures.items()}
    page = render_html(drift, performance, judgement, pngs, params)
    path = report_folder() / f"monitoring-{as_of}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    run = log_to_mlflow(registry.tracking_uri, params, drift, performance, judgement, page, pngs)
    drift_status = drift.report.status if drift.report is not None else "not measured"
    context.log.info(f"monitoring report as of {as_of}: {path}, MLflow run {run.run_id}")
    yield dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "champion": drift.model.label(),
            "report": dg.MetadataValue.path(str(path)),
            "mlflow_run_id": run.run_id,
            "mlflow_run": dg.MetadataValue.url(run.url),
            "drift_status": drift_status,
            "performance_status": judgement.status,
            **{
                name: dg.MetadataValue.md(image_markdown(name, data)) for name, data in pngs.items()
            },
            "summary": (
                f"monitoring report as of {as_of}: drift {drift_status}, performance "
                f"{judgement.status} ({path.name}, MLflow run {run.run_id[:8]})"
            ),
        }
    )


def report_figures(drift: DateDrift, performance: Performance) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    if drift.report is not None:
        columns = drift.report.columns
        if len(columns) > 1:
            figures["drift"] = psi_figure(
                columns,
                drift.report.warn_psi,
                drift.report.fail_psi,
                title=f"Drift as of {drift.as_of}",
            )
        shares = drift.report.shares
        figures["score_distribution"] = distribution_figure(
            shares[shares["column"] == SCORE],
            title=f"Score: the model's reference and {drift.as_of}",
        )
    figures["realised_performance"] = realised_figure(
        performance.table, performance.lift_column, title="Realised performance by as-of date"
    )
    return figures


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def image_markdown(name: str, data: bytes) -> str:
    return f"![{name}]({data_uri(data)})"


# ---------------------------------------------------------------- MLflow


@dataclass(frozen=True)
class MonitoringRun:
    run_id: str
    url: str


def log_to_mlflow(
    tracking_uri: str,
    params: Parameters,
    drift: DateDrift,
    performance: Performance,
    judgement: Judgement,
    page: str,
    pngs: dict[str, bytes],
) -> MonitoringRun:
    """The date's monitoring run: the page, the figures, the tables and the headline
    metrics; created the first time the date is reported, reused afterwards."""
    from orchestration.tracking import finite_metrics

    tracker = monitoring_tracker(tracking_uri, params)
    client = tracker.client
    experiment_id = tracker.experiment_id()
    run_id = monitoring_run(client, experiment_id, drift.as_of)
    client.set_tag(run_id, "champion", drift.model.label())
    metrics: dict[str, Any] = {"customers": drift.customers}
    if drift.report is not None:
        metrics["max_psi"] = drift.report.columns["psi"].max()
        metrics["score_psi"] = drift.report.columns.set_index("column").loc[SCORE, "psi"]
    own = performance.row(drift.as_of)
    for name in ("n_labelled", "n_pending", "positive_rate", "mean_score", "roc_auc"):
        metrics[name] = own[name]
    if judgement.judged is not None:
        metrics |= {"judged_auc_drop": judgement.auc_drop}
        metrics |= {"judged_calibration_error": judgement.calibration_error}
    for key, value in finite_metrics(metrics).items():
        client.log_metric(run_id, key, value)
    with tempfile.TemporaryDirectory(prefix="nextbuy-report-") as tmp:
        folder = Path(tmp)
        (folder / REPORT_ARTIFACT).write_text(page, encoding="utf-8")
        client.log_artifact(run_id, str(folder / REPORT_ARTIFACT))
        for name, data in pngs.items():
            (folder / f"{name}.png").write_bytes(data)
            client.log_artifact(run_id, str(folder / f"{name}.png"), "figures")
        tables = {"realised_performance": performance.table}
        if drift.report is not None:
            tables["drift"] = drift.report.columns
        for name, table in tables.items():
            (folder / f"{name}.csv").write_text(table.to_csv(index=False), encoding="utf-8")
            client.log_artifact(run_id, str(folder / f"{name}.csv"), "tables")
    client.set_terminated(run_id, "FINISHED")
    return MonitoringRun(run_id, run_url(experiment_id, run_id, tracking_uri=tracking_uri))
