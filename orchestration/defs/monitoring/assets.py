"""feature_drift: every scored as-of date's features and scores against the reference of
the model that scored them (ml/drift.py), as metadata and the `drift` check."""

import datetime as dt
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd

from ml.drift import DriftReport
from orchestration.defs.features.assets import CUSTOMER_FEATURES_KEY
from orchestration.defs.monitoring.checks import (
    DRIFT_KEY,
    drift_check_result,
    drift_check_spec,
    drifted,
    psi_text,
    unmeasured_check_result,
)
from orchestration.defs.monitoring.reference import (
    REFERENCE_ARTIFACT,
    compare,
    load_drift_reference,
    scored_population,
)
from orchestration.defs.monitoring.runs import publication, store_drift
from orchestration.defs.scoring.assets import SCORES_KEY
from orchestration.environment import warehouse_kind
from orchestration.partitions import AS_OF_DATES
from orchestration.resources import ParametersResource, RegistryResource, Warehouse

WORST_SHOWN = 5
_TABLE_COLUMNS = {
    "column": "string",
    "kind": "string",
    "psi": "float",
    "status": "string",
    "test": "string",
    "statistic": "float",
    "p_value": "float",
    "top_changes": "string",
}


@dg.asset(
    key=DRIFT_KEY,
    group_name="monitoring",
    partitions_def=AS_OF_DATES,
    deps=[CUSTOMER_FEATURES_KEY, SCORES_KEY],
    kinds={warehouse_kind(), "mlflow"},
    check_specs=[drift_check_spec],
)
def feature_drift(
    context: dg.AssetExecutionContext,
    warehouse: dg.ResourceParam[Warehouse],
    parameters: ParametersResource,
    registry: RegistryResource,
) -> Iterator[dg.MaterializeResult]:  # type: ignore[type-arg]
    """Drift of the scored as-of date from the scoring model's reference (the customers and
    scores of the day it was trained, drift_reference.json in its MLflow run): PSI and a
    KS test per numeric feature and for the score, category and token shares (with a
    chi-square test for categories) for the others, over the monitoring sample
    (reference.MonitoringSample: every customer up to monitoring.sample_size). A model trained before drift
    monitoring has no reference: the comparison is skipped, and the metadata and a WARN
    of the check say why."""
    params = parameters.load()
    population = scored_population(
        warehouse, dt.date.fromisoformat(context.partition_key), params.monitoring.sample_size
    )
    reg = registry.open(params.registry)
    if population.model_name != reg.model_name:
        raise ValueError(
            f"the scores as of {population.as_of} are of {population.model_name}, "
            f"not of the registry's {reg.model_name}"
        )
    model = reg.version(population.model_version)
    as_of = population.as_of.isoformat()
    facts: dict[str, Any] = {
        "as_of": as_of,
        "champion": model.label(),
        "customers": len(population.frame),
        "sample": population.sample.describe(len(population.frame)),
        "mlflow_run_id": model.run_id,
    }
    reference = load_drift_reference(reg.client, model.run_id)
    published = publication(warehouse, population.as_of)

    def keep(scope: str, report: DriftReport | None) -> str:
        # For the date's report, which then shows what this check judged (runs.py).
        return store_drift(
            registry.tracking_uri,
            params,
            population.as_of,
            published,
            len(population.frame),
            scope,
            report,
        )

    if reference is None:
        reason = (
            f"{model.label()} has no {REFERENCE_ARTIFACT} (trained before drift monitoring): "
            "drift is measured from the next champion on"
        )
        context.log.warning(reason)
        facts["monitoring_run_id"] = keep(f"not measured: {reason}", None)
        yield dg.MaterializeResult(
            metadata={
                **facts,
                "status": "no reference",
                "reason": reason,
                "summary": f"drift not measured as of {as_of}: {reason}",
            },
            check_results=[unmeasured_check_result(reason, as_of=as_of, champion=model.label())],
        )
        return
    report = compare(reference, population.frame, params.monitoring)
    facts["monitoring_run_id"] = keep(
        f"features and scores of {population.sample.describe(len(population.frame))}", report
    )
    context.log.info(f"drift as of {as_of} against {model.label()}: {report.status}")
    summary = f"drift as of {as_of} against {model.label()}: {report.status}" + (
        f" ({drifted(report)})" if report.status != "ok" else ""
    )
    yield dg.MaterializeResult(
        metadata={**facts, **drift_metadata(report), "summary": summary},
        check_results=[drift_check_result(report, as_of=as_of, champion=model.label())],
    )


def drift_metadata(report: DriftReport) -> dict[str, Any]:
    """The overall status, the worst columns and every column's result, worst first."""
    columns = report.columns.sort_values("psi", ascending=False, na_position="first")
    worst = columns.head(WORST_SHOWN)
    return {
        "status": report.status,
        "drifted_columns": drifted(report) or "(none)",
        "max_psi": float(columns["psi"].max()),
        "worst_columns": ", ".join(
            f"{c} {psi_text(p)}" for c, p in zip(worst.column, worst.psi, strict=True)
        ),
        "warn_psi": report.warn_psi,
        "fail_psi": report.fail_psi,
        "columns": dg.MetadataValue.table(
            records=[dg.TableRecord(_record(row)) for row in columns.to_dict("records")],
            schema=dg.TableSchema(
                columns=[dg.TableColumn(name, kind) for name, kind in _TABLE_COLUMNS.items()]
            ),
        ),
    }


def _record(row: dict[str, Any]) -> dict[str, Any]:
    """A table row in the types Dagster shows: missing values (no test, no data) as None."""
    record: dict[str, Any] = {}
    for name, kind in _TABLE_COLUMNS.items():
        value = row[name]
        missing = value is None or pd.isna(value)
        record[name] = None if missing else float(value) if kind == "float" else str(value)
    return record
