"""What a run of nextbuy's jobs says to people and scripts: the failure summary of a
Dagster run (the failed step's own exception, not Dagster's wrapper; checks that failed or
warned), the pipeline's report (metrics against baselines and the oracle, the gate,
the champion, the scores) and its machine-readable line. orchestration/pipeline.py runs
the jobs and calls this.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from orchestration.environment import PROJECT_ROOT, Environment

if TYPE_CHECKING:
    from orchestration.pipeline import PipelineResult


def failure_summary(
    result: dg.ExecuteInProcessResult, defs: dg.Definitions, planned: Any = None
) -> str:
    """Which checks failed (with the suite's own account) or warned, which steps failed
    and why (the exception that caused it, not Dagster's wrapper), and which assets were
    therefore not materialised."""
    lines = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            line = check_line(event.event_specific_data)
            if line:
                lines.append(line)
        if event.event_type_value == "STEP_FAILURE":
            error = event.step_failure_data.error  # type: ignore[union-attr]
            if error and error.cls_name == "DagsterAssetCheckFailedError":
                continue  # the check's own line above says more
            lines += cause_lines(f"step {event.step_key}", error)
        if event.event_type_value == "RESOURCE_INIT_FAILURE":
            # A resource that cannot start fails the run before any step does.
            error = event.event_specific_data.error  # type: ignore[union-attr]
            lines += cause_lines("starting the run's resources", error)
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


def warning_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """One line per check of the run that passed with a warning (a dbt test of severity
    warn, a drift check at WARN): a successful run says them too."""
    lines = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if _is_warning(evaluation):
                lines.append(check_line(evaluation))  # type: ignore[arg-type]
    return lines


def _is_warning(evaluation: Any) -> bool:
    return not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN


def check_line(evaluation: Any) -> str | None:
    """The terminal line of a check that did not pass (None when it passed): "warning: …"
    for WARN severity (the run goes on), "check … failed: …" for ERROR. A dbt test gives
    no description; its failing row count (dagster-dbt's metadata) says what it found."""
    if evaluation.passed:
        return None
    name = f"{evaluation.check_name} on {evaluation.asset_key.to_user_string()}"
    account = evaluation.description or _failing_rows(evaluation.metadata) or "did not pass"
    if _is_warning(evaluation):
        return f"warning: {name}: {account}"
    return f"check {name} failed: {account}"


def _failing_rows(metadata: Any) -> str | None:
    count = (metadata or {}).get("dagster_dbt/failed_row_count")
    if count is None:
        return None
    value = getattr(count, "value", count)
    return f"{value:,} row{'' if value == 1 else 's'} found by the dbt test"


def _dagster_wrappers() -> frozenset[str]:
    """The class names of Dagster's errors that only wrap the exception user code raised
    (DagsterExecutionStepExecutionError: 'Error occurred while executing op …', the
    input, output and resource errors): every subclass of DagsterUserCodeExecutionError."""
    from dagster._core.errors import DagsterUserCodeExecutionError

    names, todo = set(), [DagsterUserCodeExecutionError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    return frozenset(names)


# Lines of an exception's message the terminal shows; the log holds the rest.
MESSAGE_LINES = 8


def cause_lines(what: str, error: Any) -> list[str]:
    """``what`` failed, and why, from the error of its event (a STEP_FAILURE's, a
    RESOURCE_INIT_FAILURE's: a Dagster SerializableErrorInfo): the innermost exception of the chain (``cause``, then
    ``context``: what ``raise … from`` and an exception raised while handling another
    leave) that is not one of Dagster's wrappers, with its type, message and the line of
    code that raised it; when the step raised another exception around it, that one too."""
    if error is None:
        return [f"{what} failed: unknown error"]
    wrappers = _dagster_wrappers()
    chain = []
    while error is not None:
        chain.append(error)
        error = error.cause or error.context
    raised = [e for e in chain if e.cls_name not in wrappers] or chain[-1:]
    root = raised[-1]
    lines = [f"{what} failed: {_message(root)}"]
    where = _raised_at(root)
    if where:
        lines.append(f"  raised at {where}")
    if raised[0] is not root:
        lines.append(f"  (raised by the step as {_message(raised[0]).splitlines()[0]})")
    return lines


def _message(error: Any) -> str:
    """``Type: message`` (a SerializableErrorInfo's message starts with its type, at times
    with its module: ``_catboost.CatBoostError: …``)."""
    text = (error.message or "").strip()
    prefix = re.match(rf"^(?:[\w.]+\.)?{re.escape(error.cls_name)}: ?", text)
    text = f"{error.cls_name}: {text[prefix.end() if prefix else 0 :]}".rstrip(": ")
    lines = _dbt_errors_first(text).splitlines()
    if len(lines) > MESSAGE_LINES:
        hidden = len(lines) - MESSAGE_LINES
        lines = [*lines[:MESSAGE_LINES], f"  … {hidden} more line(s) in the log"]
    return "\n".join(lines)


# dagster-dbt's failure message: the command, the exit code, where dbt's log is, and last
# the error events dbt logged (dagster_dbt.core.dbt_cli_invocation).
_DBT_ERRORS = "Errors parsed from dbt logs:"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _dbt_errors_first(text: str) -> str:
    """A failed dbt command's message with dbt's own errors first (the cause: a model's
    SQL error, a failing test) and the command, which the log holds, left out."""
    head, marker, errors = text.partition(_DBT_ERRORS)
    if not marker:
        return text
    code = re.search(r"failed with exit code `?(-?\d+)", head)
    log = re.search(r"dbt debug log: (\S+?)\.?\s*$", head.strip())
    seen: list[str] = []
    for line in _ANSI.sub("", errors).splitlines():
        line = line.rstrip()
        if line.strip() and f"  {line}" not in seen:
            seen.append(f"  {line}")
    first = head.split(":", 1)[0]
    exited = f" (exit code {code.group(1)})" if code else ""
    where = [f"  dbt's log: {log.group(1)}"] if log else []
    return "\n".join([f"{first}: dbt failed{exited}:", *seen, *where])


_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def _raised_at(error: Any) -> str | None:
    """Where the error was raised: the innermost frame of its stack outside Dagster's own
    packages and, when that is a library's, the innermost of this project's code that
    called it (``file:line in function``)."""
    frames = [m for m in map(_FRAME.search, error.stack or []) if m]
    outside = [m for m in frames if not re.search(r"/site-packages/dagster[^/]*/", m.group(1))]
    ours = [m for m in outside if _in_project(m.group(1))]
    if not outside:
        return None
    where = _frame(outside[-1])
    if ours and ours[-1] is not outside[-1]:
        where += f", called from {_frame(ours[-1])}"
    return where


def _in_project(path: str) -> bool:
    # Compiled extensions name a bare file ("_catboost.pyx"): never this project's.
    file = Path(path)
    return (
        file.is_absolute()
        and "site-packages" not in file.parts
        and file.resolve().is_relative_to(PROJECT_ROOT)
    )


def _frame(match: re.Match[str]) -> str:
    path = match.group(1)
    if _in_project(path):
        path = str(Path(path).resolve().relative_to(PROJECT_ROOT))
    return f"{path}:{match.group(2)} in {match.group(3)}"


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
