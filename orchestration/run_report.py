"""What a run of nextbuy's jobs says to people and scripts: the failure summary of a
Dagster run, the pipeline's report (metrics against baselines and the oracle, the gate,
the champion, the scores) and its machine-readable line. orchestration/pipeline.py runs
the jobs and calls this.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import dagster as dg

from orchestration.environment import Environment

if TYPE_CHECKING:
    from orchestration.pipeline import PipelineResult


def failure_summary(
    result: dg.ExecuteInProcessResult, defs: dg.Definitions, planned: Any = None
) -> str:
    """Which checks failed (with the suite's own account), which steps failed, and which
    assets were therefore not materialised."""
    lines = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:  # type: ignore[union-attr]
                lines.append(
                    f"check {evaluation.check_name} on "  # type: ignore[union-attr]
                    f"{evaluation.asset_key.to_user_string()} failed: "  # type: ignore[union-attr]
                    f"{evaluation.description}"  # type: ignore[union-attr]
                )
        if event.event_type_value == "STEP_FAILURE":
            error = event.step_failure_data.error  # type: ignore[union-attr]
            if error and error.cls_name == "DagsterAssetCheckFailedError":
                continue  # the check's own line above says more
            # Dagster wraps the step's own exception; its message is the one that explains.
            while error and error.cause and error.cls_name == "DagsterExecutionStepExecutionError":
                error = error.cause
            message = error.message.strip() if error else "unknown error"
            lines.append(f"step {event.step_key} failed: {message}")
    if planned is None:
        graph = defs.resolve_asset_graph()
        planned = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    done = {
        e.asset_key
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key is not None
    }
    left = sorted(k.to_user_string() for k in planned - done)
    if left:
        lines.append(f"not materialised, so left as they were: {', '.join(left)}")
    return "\n".join(lines) or "the run failed"


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else round(number, 4)


def summary_json(decision: Any) -> dict[str, Any]:
    """The report's machine-readable line (the keys scripts rely on)."""
    from orchestration.defs.training.candidates import CEILING, MODELS, REFERENCES

    metrics = decision.metrics
    name = decision.candidate_name
    baselines = metrics.drop(index=[*MODELS, *REFERENCES], errors="ignore")
    best = baselines["roc_auc"].astype(float).idxmax()
    expected = metrics.get("expected_roc_auc")
    ceiling_share = None
    if expected is not None and decision.ceiling_auc is not None:
        lift = float(expected[CEILING]) - 0.5
        ceiling_share = (float(expected[name]) - 0.5) / lift if lift > 0 else None
    return {
        "auc": _finite(metrics.loc[name, "roc_auc"]),
        # The ROC-AUC's interval (evaluation.confidence_level), customers resampled.
        "auc_interval": None
        if decision.interval is None
        else [_finite(decision.interval[1]), _finite(decision.interval[2])],
        "candidate_model": name,
        "best_baseline": str(best),
        "best_baseline_auc": _finite(baselines.loc[best, "roc_auc"]),
        "oracle_auc": _finite(decision.oracle_auc),
        "ceiling_auc": _finite(decision.ceiling_auc),
        "expected_auc": None if expected is None else _finite(expected[name]),
        "ceiling_share": _finite(ceiling_share),
        "folds": int(decision.folds),
        "test_rows": int(metrics.loc[name, "n"]),
        "test_customers": int(decision.customers),
        # The gate's metric per test window, oldest first, per scorer.
        "per_fold": {
            k: [_finite(v) for v in values] for k, values in (decision.per_fold or {}).items()
        },
        "per_fold_metric": decision.per_fold_metric,
        "detectable_difference": _finite(decision.detectable_difference),
        "lift_at_10": _finite(metrics.loc[name].get("lift_at_10")),
        "champion": f"{decision.champion.name} v{decision.champion.version}",
        "champion_kind": decision.champion.kind,
        "candidate": f"{decision.candidate.name} v{decision.candidate.version}",
        "promoted": bool(decision.promoted),
        "reason": decision.reason,
        "gate": decision.gate or decision.reason,
        "selection": decision.selection,
        "calibration": decision.calibration,
        "champion_note": decision.champion_note,
    }


def report_lines(result: PipelineResult, env: Environment) -> list[str]:
    """The human part of the report: metrics against baselines and the best achievable."""
    from orchestration.defs.training.candidates import CEILING, ORACLE, REFERENCES

    metrics = result.metrics
    report = result.report
    name = report["candidate_model"]
    columns = [
        c
        for c in ("roc_auc", "expected_roc_auc", "pr_auc", "lift_at_10", "log_loss", "brier")
        if c in metrics.columns
    ]
    names = {
        name: f"{name} (candidate)",
        ORACLE: "oracle (true probabilities)",
        CEILING: "ceiling (observable)",
    }
    order = [name, *[i for i in metrics.index if i != name and i not in REFERENCES]]
    order += [i for i in REFERENCES if i in metrics.index]
    first = metrics.iloc[0]
    table = metrics.loc[order, columns].astype(float).rename(index=names)
    table.index.name = None
    lines = [
        f"backtest: {report['folds']} test windows, {int(first['n']):,} examples, "
        f"{int(first['positives']):,} positives (rate {first['base_rate']:.3f})",
        *(
            f"  {line}"
            for line in table.to_string(float_format=lambda v: f"{v:.4f}", na_rep="-").splitlines()
        ),
    ]
    if report.get("auc_interval"):
        low, high = report["auc_interval"]
        lines.append(
            f"{name}: roc_auc {report['auc']:.4f}, interval {low:.4f} to {high:.4f} "
            f"({report['test_customers']:,} customers resampled)"
            + (
                f"; the gate's test rows detect differences of "
                f"{report['detectable_difference']:.4f} or more"
                if report.get("detectable_difference") is not None
                else ""
            )
        )
    if report.get("per_fold"):
        width = max(len(k) for k in report["per_fold"])
        lines.append(f"{report['per_fold_metric']} per test window, oldest first:")
        lines += [
            f"  {scorer:<{width}}  "
            + "  ".join("   -  " if v is None else f"{v:.4f}" for v in values)
            for scorer, values in report["per_fold"].items()
        ]
    if report.get("ceiling_share") is not None:
        lines.append(
            f"observable ceiling: the candidate captures {report['ceiling_share']:.0%} of the "
            "lift over chance that the warehouse allows (expected AUC, true probabilities)"
        )
    lines.append(f"candidate: {report['selection']}")
    if report.get("calibration"):
        lines.append(f"calibration: {report['calibration']}")
    lines += [
        f"gate: {report['gate']}",
        f"champion: {report['champion']} ({report['champion_kind']})"
        + (f": {report['champion_note']}" if report["champion_note"] else ""),
        f"scores: {result.scored:,} customers in ml.customer_scores as of "
        f"{result.as_of}; campaign_audience: {result.audience:,} customers",
        f"Dagster run {result.run_id}; MLflow store {_tracking(env)}",
        "next: `nextbuy ui` opens the Dagster UI (http://127.0.0.1:3000), the dbt docs "
        "(http://127.0.0.1:8580) and MLflow (http://127.0.0.1:5000); `nextbuy audience "
        "--out audience.csv` exports the audience; new data (`nextbuy simulate "
        "--append-days 1`) is processed by `nextbuy tick`",
    ]
    return lines


def _tracking(env: Environment) -> str:
    from orchestration.mlflow_store import tracking_uri

    return tracking_uri(env)


def report_json(result: PipelineResult) -> str:
    return json.dumps(result.report, sort_keys=False)
