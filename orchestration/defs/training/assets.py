"""Training assets: candidate_model (split, fit, evaluate, log to MLflow) and
champion_model (the promotion gate). The modelling itself is ml/; these steps read the
warehouse, call ml/ and record what happened where people look: asset metadata, MLflow.
"""

import math
import time
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from ml import PropensityModel, evaluate, higher_is_better, rule_baselines, time_gapped_split
from ml.baselines import Scorer
from ml.gate import decide
from ml.plots import calibration_figure, gains_figure, roc_figure
from ml.slices import evaluation_slices
from orchestration.defs.features.assets import TRAINING_EXAMPLES_KEY
from orchestration.defs.monitoring.reference import record_drift_reference
from orchestration.defs.sources.assets import TRUTH_ORDERS_KEY
from orchestration.registry import ModelRef, Registry
from orchestration.resources import ParametersResource, RegistryResource, WarehouseResource
from orchestration.settings import EvaluationSettings
from orchestration.tracking import Tracker

TRAINING_EXAMPLES = "marts.training_examples"
TRUTH_ORDERS = TRUTH_ORDERS_KEY.to_user_string().replace("/", ".")
CANDIDATE = "catboost"
ORACLE = "oracle"


@dataclass
class Candidate:
    """What the gate needs from training: the registered candidate and every scorer's
    scores on the same test rows."""

    ref: ModelRef
    test: pd.DataFrame
    # Scorer name -> scores on `test`; the candidate under CANDIDATE.
    scores: dict[str, np.ndarray]
    baselines: dict[str, Scorer]
    # One row per scorer (candidate, baselines, oracle): overall test metrics.
    metrics: pd.DataFrame
    windows: dict[str, str]
    oracle_auc: float | None = None


@dataclass
class ChampionDecision:
    champion: ModelRef
    promoted: bool
    reason: str
    candidate: ModelRef
    metrics: pd.DataFrame
    oracle_auc: float | None


def _oracle_scores(warehouse: WarehouseResource, test: pd.DataFrame) -> np.ndarray | None:
    """The simulator's true probability for each test example, when there is a truth table.

    The best any model can do on this data: the ceiling the report compares against.
    """
    if not warehouse.has_table(TRUTH_ORDERS):
        return None
    with warehouse.connect(read_only=True) as con:
        truth = con.execute(f"select order_id, p_target from {TRUTH_ORDERS}").df()
    joined = test[["order_id"]].merge(truth, on="order_id", how="left")
    if joined["p_target"].isna().any():
        return None
    return joined["p_target"].to_numpy(dtype=np.float64)


def _evaluate_all(
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    is_probability: dict[str, bool],
    test: pd.DataFrame,
    settings: EvaluationSettings,
) -> dict[str, Any]:
    """Every scorer measured overall and per slice on the same test rows."""
    slices = evaluation_slices(
        test,
        categorical=settings.slices.categorical,
        top_categories=settings.slices.top_categories,
        bucketed={k: list(v) for k, v in settings.slices.bucketed.items()},
    )
    return {
        name: evaluate(
            y,
            score,
            slices,
            top_k_percents=list(settings.top_k_percents),
            min_slice_positives=settings.min_slice_positives,
            probabilities=is_probability[name],
        )
        for name, score in scores.items()
    }


def _metrics_table(evaluations: dict[str, Any]) -> pd.DataFrame:
    rows = [{"scorer": name, **ev.overall} for name, ev in evaluations.items()]
    return pd.DataFrame(rows).set_index("scorer")


def _markdown(frame: pd.DataFrame, digits: int = 4) -> str:
    return frame.round(digits).to_markdown() if not frame.empty else "(empty)"


@dg.asset(
    group_name="training",
    deps=[TRAINING_EXAMPLES_KEY, TRUTH_ORDERS_KEY],
    kinds={"catboost", "mlflow"},
)
def candidate_model(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    parameters: ParametersResource,
    registry: RegistryResource,
) -> dg.Output[Candidate]:
    """A CatBoost candidate trained on a time-gapped split of training_examples, measured on
    the test window against the rule baselines (and the simulator's truth when present),
    logged as an MLflow run (with the drift reference monitoring compares scored dates
    with: today's customer_features and the candidate's scores on them) and registered as a
    new model version."""
    params = parameters.load()
    evaluation = params.evaluation
    examples = warehouse.read_table(TRAINING_EXAMPLES, order_by="as_of, customer_id, order_id")
    split = time_gapped_split(examples, **params.split.model_dump())
    train, validation, test = split.train, split.validation, split.test

    started = time.perf_counter()
    model = PropensityModel(**params.model.estimator_params()).fit(
        train, train["label"], eval_set=(validation, validation["label"])
    )
    fit_seconds = time.perf_counter() - started
    baselines = {
        b.name: b.fit(train, train["label"])
        for b in rule_baselines(evaluation.baseline_group_columns)
    }
    y = test["label"].to_numpy(dtype=np.float64)
    scores: dict[str, np.ndarray] = {CANDIDATE: model.predict_proba(test)}
    is_probability = {CANDIDATE: True}
    for name, baseline in baselines.items():
        scores[name] = baseline.predict_proba(test)
        is_probability[name] = baseline.is_probability
    oracle = _oracle_scores(warehouse, test)
    if oracle is not None:
        scores[ORACLE] = oracle
        is_probability[ORACLE] = True

    evaluations = _evaluate_all(y, scores, is_probability, test, evaluation)
    metrics = _metrics_table(evaluations)
    bins = evaluation.calibration_bins
    figures = {
        "roc.png": roc_figure(y, scores, title="ROC on the test window"),
        "gains.png": gains_figure(y, scores),
        "calibration.png": calibration_figure(
            y, {k: v for k, v in scores.items() if is_probability[k]}, bins=bins
        ),
    }
    windows = split.windows.as_dict()
    data_window = {
        **windows,
        "train_examples": str(len(train)),
        "validation_examples": str(len(validation)),
        "test_examples": str(len(test)),
        "dropped_in_gaps": str(split.dropped_in_gaps),
    }
    tracker = registry.tracker(params.registry)
    run_id = tracker.log_run(
        run_name=f"{CANDIDATE}-{context.run.run_id[:8]}",
        scorer=model,
        kind="model",
        params={
            **{f"model.{k}": v for k, v in params.model.catboost.items()},
            "model.best_iteration": model.best_iteration_,
            "model.tree_count": model.tree_count_,
            "split": params.split.model_dump(),
            "features.sequence_length": params.features.sequence_length,
            "campaign.target_brands": list(params.campaign.target_brands),
        },
        data_window=data_window,
        metrics={
            **evaluations[CANDIDATE].flat(),
            "fit_seconds": fit_seconds,
            **{
                f"baseline.{name}.{metric}": value
                for name in scores
                if name != CANDIDATE
                for metric, value in evaluations[name].overall.items()
            },
        },
        figures=figures,
        tables={
            "metrics_vs_baselines": metrics.reset_index(),
            "metrics_by_slice": evaluations[CANDIDATE].by_slice,
            "feature_importance": model.feature_importance_table(),
        },
        input_example=test.head(5),
        tags={"dagster.run_id": context.run.run_id},
    )
    drift_reference = record_drift_reference(warehouse, tracker.client, run_id, model, params)
    ref = registry.open(params.registry).register(run_id)
    oracle_auc = float(evaluations[ORACLE].overall["roc_auc"]) if oracle is not None else None
    candidate = Candidate(
        ref=ref,
        test=test.reset_index(drop=True),
        scores={k: v for k, v in scores.items() if k != ORACLE},
        baselines=baselines,
        metrics=metrics,
        windows=windows,
        oracle_auc=oracle_auc,
    )
    top = metrics.loc[CANDIDATE]
    return dg.Output(
        candidate,
        metadata={
            "model": ref.label(),
            "mlflow_run_id": run_id,
            "mlflow_experiment_id": tracker.experiment_id(),
            # roc.png, gains.png, calibration.png; `nextbuy ui` shows them in MLflow.
            "plots": dg.MetadataValue.path(f"{tracker.artifact_uri(run_id)}/figures"),
            "test_roc_auc": float(top["roc_auc"]),
            "test_lift_at_10": float(top.get("lift_at_10", math.nan)),
            "oracle_roc_auc": oracle_auc,
            "metrics_vs_baselines": dg.MetadataValue.md(_markdown(metrics)),
            "metrics_by_slice": dg.MetadataValue.md(
                _markdown(evaluations[CANDIDATE].by_slice.set_index(["slice", "value"]))
            ),
            "train_examples": len(train),
            "validation_examples": len(validation),
            "test_examples": len(test),
            "windows": windows,
            "best_iteration": model.best_iteration_,
            "fit_seconds": round(fit_seconds, 2),
            # What monitoring will compare scored dates with (orchestration/defs/monitoring).
            "drift_reference": drift_reference,
        },
    )


@dg.asset(group_name="training", kinds={"mlflow"})
def champion_model(
    context: dg.AssetExecutionContext,
    candidate_model: Candidate,
    warehouse: WarehouseResource,
    parameters: ParametersResource,
    registry: RegistryResource,
) -> dg.Output[ChampionDecision]:
    """The promotion gate: the `champion` alias moves to the candidate only when it beats
    every baseline and the current champion on the same test rows by the configured
    margin, with a bootstrap interval that excludes zero. When nothing has ever passed,
    the best baseline is registered and made champion, so there is always one to score
    with."""
    params = parameters.load()
    gate, evaluation = params.gate, params.evaluation
    reg = registry.open(params.registry)
    candidate = candidate_model
    y = candidate.test["label"].to_numpy(dtype=np.float64)
    contenders = {k: v for k, v in candidate.scores.items() if k != CANDIDATE}
    current = reg.champion()
    if current is not None:
        scorer = reg.load_scorer(current)
        contenders[f"champion ({current.label()})"] = np.asarray(
            scorer.predict(candidate.test), dtype=np.float64
        )
    decision = decide(
        y,
        candidate.scores[CANDIDATE],
        contenders,
        metric=gate.metric,
        margin=gate.margin,
        n_boot=evaluation.bootstrap_samples,
        confidence_level=evaluation.confidence_level,
        seed=gate.seed,
    )
    reg.record_decision(candidate.ref, decision.as_dict())
    reason = decision.reason
    if decision.promote:
        reg.promote(candidate.ref, reason)
        champion = candidate.ref
    elif current is not None:
        champion = current
        reason = f"{reason}; the champion stays {current.label()}"
    else:
        tracker = registry.tracker(params.registry)
        champion = _register_best_baseline(reg, tracker, candidate, gate.metric, reason)
        best = candidate.baselines[champion.scorer_name]
        record_drift_reference(warehouse, tracker.client, champion.run_id, best, params)
        reason = (
            f"{reason}; no model has passed the gate yet, so the best baseline "
            f"{champion.scorer_name} is the champion ({champion.label()})"
        )
    context.log.info(reason)
    comparisons = pd.DataFrame([c.__dict__ for c in decision.comparisons])
    return dg.Output(
        ChampionDecision(
            champion=champion,
            promoted=decision.promote,
            reason=reason,
            candidate=candidate.ref,
            metrics=candidate.metrics,
            oracle_auc=candidate.oracle_auc,
        ),
        metadata={
            "champion": champion.label(),
            "promoted": decision.promote,
            "reason": reason,
            "candidate": candidate.ref.label(),
            "comparisons": dg.MetadataValue.md(
                _markdown(comparisons.set_index("contender")) if len(comparisons) else "(none)"
            ),
        },
    )


def _register_best_baseline(
    reg: Registry, tracker: Tracker, candidate: Candidate, metric: str, reason: str
) -> ModelRef:
    table = candidate.metrics.drop(index=[CANDIDATE, ORACLE], errors="ignore")
    best_name = str(table[metric].sort_values(ascending=not higher_is_better(metric)).index[0])
    best = candidate.baselines[best_name]
    run_id = tracker.log_run(
        run_name=f"baseline-{best_name}",
        scorer=best,
        kind="baseline",
        params={"baseline": best_name},
        data_window=candidate.windows,
        metrics={k: float(v) for k, v in table.loc[best_name].items()},
        figures={},
        tables={},
        input_example=candidate.test.head(5),
        tags={"fallback_reason": reason[:4000]},
    )
    ref = reg.register(run_id)
    reg.promote(ref, f"fallback: {reason}")
    return ref
