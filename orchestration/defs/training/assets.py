"""Training assets: candidate_model (split, fit, evaluate, log to MLflow) and
champion_model (the promotion gate). The modelling itself is ml/; these steps read the
warehouse, call ml/ and record what happened where people look: asset metadata (plots,
readable tables, links into MLflow's UI) and MLflow (a run spanning the step, its
description and the version's, updated once the gate has decided).

Kept whole: the two assets of the training step share the Candidate one hands the
other; how they present it is orchestration/defs/training/presentation.py.
"""

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from ml import higher_is_better
from ml.backtest import FOLD_COLUMN as FOLD
from ml.backtest import Backtest
from ml.baselines import Scorer
from ml.gate import decide
from ml.metrics import metric_names
from ml.plots import calibration_figure, figure_png, gains_figure, roc_figure
from ml.slices import slice_labeller
from ml.tuning import Tuning
from orchestration import ml_test_score
from orchestration.defs.features.assets import TRAINING_EXAMPLES_KEY
from orchestration.defs.monitoring.reference import record_drift_reference
from orchestration.defs.monitoring.report import image_markdown
from orchestration.defs.sources.assets import TRUTH_ORDERS_KEY
from orchestration.defs.training.candidates import (
    CATBOOST,
    CEILING,
    LOGISTIC,
    MODELS,
    ORACLE,
    REFERENCES,
    backtest_all,
    measure,
)
from orchestration.defs.training.presentation import (
    calibration_sentence,
    fit_progress,
    folds_markdown,
    headline,
    markdown_table,
    model_title,
    readable_metrics,
    readable_slices,
    slices_table,
    span,
    text_markdown,
    trained_on,
    tuning_sentence,
)
from orchestration.registry import ModelRef, Registry
from orchestration.resources import (
    ParametersResource,
    RegistryResource,
    Warehouse,
    WarehouseResource,
)
from orchestration.settings import Parameters
from orchestration.tracking import Tracker, experiment_url, model_version_url, run_url
from thelook.pause_points import pause_point

TRAINING_EXAMPLES = "marts.training_examples"
TRUTH_ORDERS = TRUTH_ORDERS_KEY.to_user_string().replace("/", ".")


@dataclass
class Candidate:
    """What the gate needs from training: the registered candidate and every scorer's
    scores on the same (pooled backtest) test rows."""

    ref: ModelRef
    # The candidate's scorer name (catboost or logistic).
    name: str
    # Pooled test rows of the backtest (a ``fold`` column says whose).
    test: pd.DataFrame
    # Scorer name -> scores on `test`: both models and every rule.
    scores: dict[str, np.ndarray]
    # The newest fold's fitted rules (the fallback champion when nothing has passed).
    baselines: dict[str, Scorer]
    # One row per scorer and reference (oracle, ceiling): pooled test metrics.
    metrics: pd.DataFrame
    # The newest fold's windows (the registered model's).
    windows: dict[str, str]
    oracle_auc: float | None = None
    # Examples per window of the newest fold: train, validation, test; and pooled test.
    sizes: dict[str, int] | None = None
    # The candidate's one-line description before the gate decides.
    description: str = ""
    # Why this candidate and not the other model.
    selection: str = ""
    folds: int = 1
    ceiling_auc: float | None = None
    # The candidate's calibration on the pooled test rows, before and after, in words.
    calibration: str = ""
    # The candidate's ROC-AUC on the pooled rows: value, lower, upper (by customer).
    interval: tuple[float, float, float] | None = None
    # The gate's metric per test window (oldest first), per scorer.
    per_fold: dict[str, list[float]] | None = None


@dataclass
class ChampionDecision:
    champion: ModelRef
    promoted: bool
    # The gate's sentence, then what it means for the champion.
    reason: str
    candidate: ModelRef
    metrics: pd.DataFrame
    oracle_auc: float | None
    # The gate's sentence alone, and why the champion is the one it is.
    gate: str = ""
    champion_note: str = ""
    candidate_name: str = CATBOOST
    selection: str = ""
    folds: int = 1
    # The smallest difference the gate's test rows detect (against the best rule).
    detectable_difference: float | None = None
    ceiling_auc: float | None = None
    calibration: str = ""
    interval: tuple[float, float, float] | None = None
    customers: int = 0
    per_fold: dict[str, list[float]] | None = None
    per_fold_metric: str = "roc_auc"


def _truth_scores(warehouse: Warehouse, test: pd.DataFrame) -> np.ndarray | None:
    """The simulator's true probability for each test example, when there is a truth table.

    The best any model can do on this data: the ceiling the report compares against.
    """
    if not warehouse.has_table(TRUTH_ORDERS):
        return None
    truth = warehouse.query(f"select order_id, p_target from {warehouse.relation(TRUTH_ORDERS)}")
    joined = test[["order_id"]].merge(truth, on="order_id", how="left")
    if joined["p_target"].isna().any():
        return None
    return joined["p_target"].to_numpy(dtype=np.float64)


def _run_as_of(context: dg.AssetExecutionContext) -> dt.date | None:
    """The as-of date the run is for (its partition key: a `retrain` run is one as-of
    date), so that examples dated after it cannot move the windows; None outside one."""
    from dagster._core.storage.tags import PARTITION_NAME_TAG

    key = context.run.tags.get(PARTITION_NAME_TAG)
    try:
        return dt.date.fromisoformat(key) if key else None
    except ValueError:
        return None


@dg.asset(
    group_name="training",
    deps=[TRAINING_EXAMPLES_KEY, TRUTH_ORDERS_KEY],
    kinds={"catboost", "scikitlearn", "mlflow"},
)
def candidate_model(
    context: dg.AssetExecutionContext,
    warehouse: dg.ResourceParam[Warehouse],
    parameters: ParametersResource,
    registry: RegistryResource,
) -> dg.Output[Candidate]:
    """The candidate: CatBoost, the logistic challenger and the online challenger, each
    fitted (the online one by streaming the fold's examples in time order, measured by
    progressive validation on the way) and tested on every fold of a rolling-origin
    backtest of training_examples with the rule baselines; the simpler model unless a
    more complex one is better beyond doubt (logistic, then CatBoost, then online). Measured on the
    pooled test rows against the rules (and, with the simulator's truth, the oracle and
    the observable ceiling), logged as an MLflow run (with the drift reference monitoring
    compares scored dates with) and registered as a new model version: the newest
    fold's model. Its metadata shows the folds, calibration, the ROC, gains and
    calibration plots, every scorer's metrics overall and per slice, and links into
    MLflow's UI."""
    step_started = dt.datetime.now(dt.UTC)
    params = parameters.load()
    evaluation = params.evaluation
    examples = warehouse.read_table(TRAINING_EXAMPLES, order_by="as_of, customer_id, order_id")
    backtest, tuning = backtest_all(
        examples, params, fit_progress(context.log), as_of=_run_as_of(context)
    )
    oracle = _truth_scores(warehouse, backtest.test)
    measured = measure(backtest, params, oracle, _ceiling_scores(warehouse, backtest.test))
    name = measured.candidate
    newest = backtest.newest
    model = newest.scorers[name]
    metrics, evaluations = measured.metrics, measured.evaluations
    test = measured.test
    y = test["label"].to_numpy(dtype=np.float64)
    probabilities = {k: v for k, v in measured.scores.items() if measured.is_probability[k]}
    if oracle is not None:
        probabilities[ORACLE] = oracle
    bins = evaluation.calibration_bins
    figures = {
        "roc.png": roc_figure(
            y,
            measured.scores,
            title="ROC on the backtest's test windows, each ranked on its own",
            strata=test[FOLD].to_numpy(),
        ),
        "gains.png": gains_figure(y, measured.scores, strata=test[FOLD].to_numpy()),
        "calibration.png": calibration_figure(y, probabilities, bins=bins),
    }
    # Small PNGs shown in the Dagster UI (MLflow keeps the full-size figures).
    pngs = {key.removesuffix(".png"): figure_png(figure) for key, figure in figures.items()}
    label = slice_labeller(evaluation.slices.bucketed)
    windows = newest.split.windows.as_dict()
    sizes = {
        "train": len(newest.split.train),
        "validation": len(newest.split.validation),
        "test": len(newest.split.test),
        "pooled_test": len(test),
    }
    folds = len(backtest.folds)
    data_window = {
        **windows,
        "train_examples": str(sizes["train"]),
        "validation_examples": str(sizes["validation"]),
        "test_examples": str(sizes["test"]),
        "dropped_in_gaps": str(newest.split.dropped_in_gaps),
        "folds": str(folds),
        "backtest_test_start": backtest.folds[0].split.windows.test_start.isoformat(),
        "backtest_test_examples": str(len(test)),
    }
    gate_metric = params.gate.metric
    progressive = measured.progressive()
    # The online model's running metrics on the registered fold's training stream.
    online_metrics = (
        {
            f"online.progressive_{metric}": float(progressive[metric].iloc[-1])
            for metric in ("roc_auc", "log_loss")
        }
        if progressive is not None
        else {}
    )
    description = (
        f"{model_title(name)} candidate {trained_on(windows, sizes)}; backtest of {folds} "
        f"test windows ({len(test):,} examples): {headline(metrics, name, gate_metric)}; "
        f"chosen as {measured.selection_sentence()}"
    )
    tracker = registry.tracker(params.registry)
    run_id = tracker.log_run(
        run_name=f"{name}-{context.run.run_id[:8]}",
        scorer=model,
        kind="model",
        params={
            **_model_params(params, backtest, tuning),
            "split": params.split.model_dump(),
            "features.sequence_length": params.features.sequence_length,
            "campaign.target_brands": list(params.campaign.target_brands),
            "candidate": name,
        },
        data_window=data_window,
        metrics={
            **evaluations[name].flat(),
            **{f"fit_seconds.{k}": v for k, v in backtest.fit_seconds.items()},
            "fit_seconds": sum(backtest.fit_seconds.values()),
            "folds": folds,
            **online_metrics,
            **(
                {"online.selection.improvement": measured.online_selection.comparison.improvement}
                if measured.online_selection is not None
                else {}
            ),
            **(
                {"selection.improvement": measured.selection.comparison.improvement}
                if measured.selection is not None
                else {}
            ),
            **{
                f"baseline.{scorer}.{metric}": value
                for scorer in measured.evaluations
                if scorer != name
                for metric, value in evaluations[scorer].overall.items()
            },
            **(
                {f"expected_roc_auc.{k}": float(v) for k, v in metrics["expected_roc_auc"].items()}
                if "expected_roc_auc" in metrics
                else {}
            ),
            **{
                f"fold.{row['fold']}.{gate_metric}": float(row[name])
                for row in measured.folds.to_dict("records")
            },
        },
        figures=figures,
        tables={
            "metrics_vs_baselines": metrics.reset_index(),
            "metrics_by_slice": slices_table(evaluations, label),
            "backtest_folds": measured.folds,
            "calibration": measured.calibration,
            **_model_tables(newest.scorers),
            **({"tuning_trials": tuning.table()} if tuning is not None else {}),
            **({"online_progressive": progressive} if progressive is not None else {}),
        },
        input_example=newest.split.test.head(5),
        features=newest.split.test,
        tags={"dagster.run_id": context.run.run_id, "candidate": name},
        description=f"{description}; awaiting the promotion gate",
        start_time=step_started,
    )
    drift_reference = record_drift_reference(warehouse, tracker.client, run_id, model, params)
    # How production-ready the code that trained it says it is (README's ML Test Score).
    ml_test_score.log_to_mlflow(tracker.client, run_id)
    if tuning is not None:
        rows = tuning.table().to_dict("records")
        tracker.log_child_runs(run_id, "tuning-trial", rows, ("value", "trees", "seconds"))
    ref = registry.open(params.registry).register(run_id)
    pause_point("registered")
    tracker.end_now(run_id)
    experiment_id = tracker.experiment_id()
    view = tracker.save_runs_view(
        [
            *metric_names(list(evaluation.top_k_percents)),
            *(f"baseline.{s}.{gate_metric}" for s in measured.evaluations if s != name),
            *online_metrics,
            "fit_seconds",
        ]
    )
    uri = tracker.tracking_uri
    oracle_auc = _metric(metrics, ORACLE, "roc_auc")
    ceiling_auc = _metric(metrics, CEILING, "roc_auc")
    candidate = Candidate(
        ref=ref,
        name=name,
        test=test,
        scores=measured.scores,
        baselines={k: v for k, v in newest.scorers.items() if k not in MODELS},
        metrics=metrics,
        windows=windows,
        oracle_auc=oracle_auc,
        sizes=sizes,
        description=description,
        selection=measured.selection_sentence(),
        folds=folds,
        ceiling_auc=ceiling_auc,
        calibration=calibration_sentence(measured.calibration, name),
        interval=measured.interval,
        per_fold={
            scorer: [float(v) for v in measured.folds[scorer].iloc[:-1]]
            for scorer in measured.scores
        },
    )
    top = metrics.loc[name]
    return dg.Output(
        candidate,
        metadata={
            "model": ref.label(),
            "description": description,
            "selection": measured.selection_sentence(),
            # Links into MLflow's UI (`nextbuy ui`, or NEXTBUY_MLFLOW_UI_URL).
            "mlflow_run": dg.MetadataValue.url(run_url(experiment_id, run_id, tracking_uri=uri)),
            "mlflow_model_version": dg.MetadataValue.url(
                model_version_url(ref.name, ref.version, tracking_uri=uri)
            ),
            "mlflow_experiment": dg.MetadataValue.url(
                experiment_url(experiment_id, view=view, tracking_uri=uri)
            ),
            "test_roc_auc": float(top["roc_auc"]),
            "test_lift_at_10": float(top.get("lift_at_10", math.nan)),
            "oracle_roc_auc": oracle_auc,
            "ceiling_roc_auc": ceiling_auc,
            "folds": folds,
            "backtest_folds": dg.MetadataValue.md(folds_markdown(measured.folds, gate_metric)),
            "calibration": dg.MetadataValue.md(
                text_markdown(measured.calibration.round(4).astype(str))
                + "\n\n"
                + image_markdown("calibration", pngs["calibration"])
            ),
            "roc": dg.MetadataValue.md(image_markdown("ROC", pngs["roc"])),
            "gains": dg.MetadataValue.md(image_markdown("gains and lift", pngs["gains"])),
            "metrics_vs_baselines": dg.MetadataValue.md(readable_metrics(evaluations, metrics)),
            "metrics_by_slice": dg.MetadataValue.md(
                readable_slices(evaluations, gate_metric, label)
            ),
            "train_examples": sizes["train"],
            "validation_examples": sizes["validation"],
            "test_examples": len(test),
            "windows": windows,
            "trees": backtest.trees,
            "tuning": tuning_sentence(tuning),
            "fit_seconds": round(sum(backtest.fit_seconds.values()), 2),
            **online_metrics,
            **(
                {
                    "online_progressive": dg.MetadataValue.md(
                        markdown_table(
                            progressive.assign(as_of=progressive["as_of"].dt.date).set_index(
                                "examples"
                            )
                        )
                    )
                }
                if progressive is not None
                else {}
            ),
            # What monitoring will compare scored dates with (orchestration/defs/monitoring).
            "drift_reference": drift_reference,
        },
    )


def _metric(metrics: pd.DataFrame, row: str, column: str) -> float | None:
    return float(metrics.loc[row, column]) if row in metrics.index else None


def _model_params(params: Parameters, backtest: Backtest, tuning: Tuning | None) -> dict[str, Any]:
    """What the backtest's models were made with (whichever is the candidate): CatBoost's
    settings as the search left them, the trees chosen on the folds and each fold's own
    best iteration, the search's outcome, and the challenger's settings."""
    settings = {**params.model.catboost, **(tuning.best.settings if tuning else {})}
    out: dict[str, Any] = {
        **{f"model.{k}": v for k, v in settings.items()},
        "model.trees": backtest.trees,
        "model.fold_best_iterations": [f.best_iteration for f in backtest.folds],
    }
    if tuning is not None:
        out.update(
            {
                "tuning.trials_run": len(tuning.trials),
                "tuning.best_trial": tuning.best.number,
                "tuning.best_value": round(tuning.best.value, 5),
            }
        )
    if params.challenger.enabled:
        out.update({f"challenger.{k}": v for k, v in params.challenger.model_dump().items()})
    if params.online.enabled:
        out.update({f"online.{k}": v for k, v in params.online.model_dump().items()})
        out["online.label_delay_days"] = params.monitoring.label_horizon_days
    return out


def _model_tables(scorers: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """CatBoost's feature importance and the logistic model's coefficients."""
    tables = {"feature_importance": scorers[CATBOOST].feature_importance_table()}
    if LOGISTIC in scorers:
        tables["logistic_coefficients"] = scorers[LOGISTIC].coefficient_table()
    return tables


@dg.asset(group_name="training", kinds={"mlflow"})
def champion_model(
    context: dg.AssetExecutionContext,
    candidate_model: Candidate,
    warehouse: dg.ResourceParam[Warehouse],
    parameters: ParametersResource,
    registry: RegistryResource,
) -> dg.Output[ChampionDecision]:
    """The promotion gate: the `champion` alias moves to the candidate only when it beats
    every baseline and the current champion on the same test rows by the configured
    margin, with a bootstrap interval that excludes zero. When nothing has ever passed,
    the best baseline is registered and made champion, so there is always one to score
    with."""
    step_started = dt.datetime.now(dt.UTC)
    params = parameters.load()
    gate, evaluation = params.gate, params.evaluation
    reg = registry.open(params.registry)
    candidate = candidate_model
    test = candidate.test
    y = test["label"].to_numpy(dtype=np.float64)
    # The rules; the other model was weighed when the candidate was chosen.
    contenders = {k: v for k, v in candidate.scores.items() if k not in MODELS}
    rows: dict[str, np.ndarray] = {}
    current = reg.champion()
    if current is not None:
        scorer = reg.load_scorer(current)
        contenders["champion"] = np.asarray(scorer.predict(test), dtype=np.float64)
        rows["champion"] = _unseen_by(reg, current, test)
    decision = decide(
        y,
        candidate.scores[candidate.name],
        contenders,
        metric=gate.metric,
        margin=gate.margin,
        n_boot=evaluation.bootstrap_samples,
        confidence_level=evaluation.confidence_level,
        seed=gate.seed,
        groups=test["customer_id"].to_numpy(),
        rows=rows,
        strata=test[FOLD].to_numpy(),
    )
    reg.record_decision(candidate.ref, decision.as_dict())
    reason = decision.reason
    if decision.promote:
        reg.promote(candidate.ref, reason)
        champion = candidate.ref
        note = "promoted by this run"
    elif current is not None:
        champion = current
        note = "the champion stays"
        reason = f"{reason}; the champion stays {current.label()}"
    else:
        tracker = registry.tracker(params.registry)
        champion = _register_best_baseline(
            reg, tracker, candidate, gate.metric, reason, step_started
        )
        best = candidate.baselines[champion.scorer_name]
        record_drift_reference(warehouse, tracker.client, champion.run_id, best, params)
        tracker.end_now(champion.run_id)
        note = f"no model has passed the gate yet, so the best rule {champion.scorer_name}"
        reason = (
            f"{reason}; no model has passed the gate yet, so the best baseline "
            f"{champion.scorer_name} is the champion ({champion.label()})"
        )
    # The candidate's run and version say what became of it.
    reg.describe(candidate.ref, f"{candidate.description or candidate.ref.label()}; {reason}")
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
            gate=decision.reason,
            champion_note=note,
            candidate_name=candidate.name,
            selection=candidate.selection,
            folds=candidate.folds,
            detectable_difference=_detectable(decision, gate.metric),
            ceiling_auc=candidate.ceiling_auc,
            calibration=candidate.calibration,
            interval=candidate.interval,
            customers=int(test["customer_id"].nunique()),
            per_fold=candidate.per_fold,
            per_fold_metric=gate.metric,
        ),
        metadata={
            "champion": champion.label(),
            "promoted": decision.promote,
            "reason": reason,
            "candidate": candidate.ref.label(),
            "mlflow_champion": dg.MetadataValue.url(
                model_version_url(champion.name, champion.version, tracking_uri=reg.tracking_uri)
            ),
            "mlflow_candidate": dg.MetadataValue.url(
                model_version_url(
                    candidate.ref.name, candidate.ref.version, tracking_uri=reg.tracking_uri
                )
            ),
            "comparisons": dg.MetadataValue.md(
                markdown_table(comparisons.set_index("contender")) if len(comparisons) else "(none)"
            ),
        },
    )


def _unseen_by(reg: Registry, champion: ModelRef, test: pd.DataFrame) -> np.ndarray:
    """The test rows the champion was not fitted on: from its own test window's start
    (its run's ``data.test_start``); every row when its run does not say."""
    start = reg.client.get_run(champion.run_id).data.params.get("data.test_start")
    if start is None:
        return np.ones(len(test), dtype=bool)
    return np.asarray(pd.to_datetime(test["as_of"]) >= pd.Timestamp(start))


def _detectable(decision: Any, metric: str) -> float | None:
    """The smallest difference the gate's rows detect against the best rule (all rows)."""
    rules = [c for c in decision.comparisons if c.contender != "champion"]
    if not rules:
        return None
    best = max(rules, key=lambda c: c.contender_value * (1 if higher_is_better(metric) else -1))
    return float(best.detectable_difference)


def _register_best_baseline(
    reg: Registry,
    tracker: Tracker,
    candidate: Candidate,
    metric: str,
    reason: str,
    started: dt.datetime,
) -> ModelRef:
    table = candidate.metrics.drop(index=[*MODELS, *REFERENCES], errors="ignore")
    best_name = str(table[metric].sort_values(ascending=not higher_is_better(metric)).index[0])
    best = candidate.baselines[best_name]
    value = float(table.loc[best_name, metric])
    sizes = candidate.sizes or {}
    description = (
        f"Rule baseline {best_name} fitted on {span(candidate.windows, 'train')}"
        f" ({sizes.get('train', 0):,} examples), tested on {span(candidate.windows, 'test')}"
        f" ({sizes.get('test', len(candidate.test)):,}); test {metric} {value:.4f}; champion "
        f"because no model has passed the gate yet (the candidate {candidate.ref.label()}: "
        f"{reason})"
    )
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
        features=candidate.test.drop(columns="fold"),
        tags={"fallback_reason": reason[:4000]},
        description=description,
        start_time=started,
    )
    ref = reg.register(run_id)
    reg.promote(ref, f"fallback: {reason}")
    return ref


def _ceiling_scores(warehouse: Warehouse, test: pd.DataFrame) -> np.ndarray | None:
    """The observable ceiling for each test example: the Bayes posterior of a
    target-brand order given only what the warehouse shows, under the simulator's own
    process (thelook/ceiling.py); None without a behavioural simulation."""
    # The simulator writes its truth into a DuckDB warehouse only.
    if not isinstance(warehouse, WarehouseResource) or not warehouse.has_table(TRUTH_ORDERS):
        return None
    from thelook.ceiling import observable_posterior
    from thelook.simulator import SimulationError

    order_ids = test["order_id"].to_numpy()
    with warehouse.connect(read_only=True) as con:
        try:
            posterior = observable_posterior(con, order_ids)
        except SimulationError:
            return None
    values = posterior.reindex(order_ids).to_numpy(dtype=np.float64)
    return None if np.isnan(values).any() else values
