"""Training assets: candidate_model (split, fit, evaluate, log to MLflow) and
champion_model (the promotion gate). The modelling itself is ml/; these steps read the
warehouse, call ml/ and record what happened where people look: asset metadata (plots,
readable tables, links into MLflow's UI) and MLflow (a run spanning the step, its
description and the version's, updated once the gate has decided).

Kept whole: the two assets of the training step share the Candidate they hand on and
the metadata helpers that present it; each helper serves only these two.
"""

import datetime as dt
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pandas as pd

from ml import PropensityModel, evaluate, higher_is_better, rule_baselines, time_gapped_split
from ml.baselines import Scorer
from ml.gate import decide
from ml.metrics import Evaluation, metric_names, slice_comparison
from ml.plots import calibration_figure, figure_png, gains_figure, roc_figure
from ml.slices import evaluation_slices, slice_labeller
from orchestration.defs.features.assets import TRAINING_EXAMPLES_KEY
from orchestration.defs.monitoring.reference import record_drift_reference
from orchestration.defs.monitoring.report import image_markdown
from orchestration.defs.sources.assets import TRUTH_ORDERS_KEY
from orchestration.registry import ModelRef, Registry
from orchestration.resources import ParametersResource, RegistryResource, WarehouseResource
from orchestration.settings import EvaluationSettings
from orchestration.tracking import Tracker, experiment_url, model_version_url, run_url

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
    # Examples per window: train, validation, test.
    sizes: dict[str, int] | None = None
    # The candidate's one-line description before the gate decides.
    description: str = ""


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
) -> dict[str, Evaluation]:
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


def _metrics_table(evaluations: Mapping[str, Evaluation]) -> pd.DataFrame:
    rows = [{"scorer": name, **ev.overall} for name, ev in evaluations.items()]
    return pd.DataFrame(rows).set_index("scorer")


def _markdown(frame: pd.DataFrame, digits: int = 4) -> str:
    return frame.round(digits).to_markdown() if not frame.empty else "(empty)"


def _text_markdown(frame: pd.DataFrame) -> str:
    """A table of text (``ml.metrics``' readable tables) as markdown: the text as it is,
    labels and notes left, numbers right; a ``note`` column only when a row has one."""
    if frame.empty:
        return "(empty)"
    if "note" in frame and not frame["note"].astype(bool).any():
        frame = frame.drop(columns="note")
    align = ["left" if c in ("scorer", "slice", "note") else "right" for c in frame.columns]
    return str(frame.to_markdown(index=False, disable_numparse=True, colalign=align))


def _readable_metrics(evaluations: Mapping[str, Evaluation]) -> str:
    """Every scorer's test metrics as a markdown table, a missing one with its reason."""
    rows = [{"scorer": name, **ev.readable_overall()} for name, ev in evaluations.items()]
    return _text_markdown(pd.DataFrame(rows))


def _readable_slices(
    evaluations: Mapping[str, Evaluation], metric: str, label: Callable[[str, str], str]
) -> str:
    """The gate's metric per slice for every scorer side by side, then each scorer's
    metrics per slice, as markdown; a missing value says why."""
    parts = [
        f"**{metric} by slice**",
        _text_markdown(slice_comparison(evaluations, metric, label)),
    ]
    for name, evaluation in evaluations.items():
        table = evaluation.readable_by_slice(label)
        # A metric missing in every row for one reason (a rule's log loss): said once.
        heading = f"**{name}**"
        for column in table.columns.drop(["slice", "note"], errors="ignore"):
            values = set(table[column]) - {"n/a"}  # thin rows say why in their note
            if len(values) == 1 and (reason := values.pop()).startswith("n/a: "):
                table = table.drop(columns=column)
                heading += f"; {column} {reason}"
        parts += [heading, _text_markdown(table)]
    return "\n\n".join(parts)


def _slices_table(
    evaluations: Mapping[str, Evaluation], label: Callable[[str, str], str]
) -> pd.DataFrame:
    """Every scorer's metrics per slice in one numeric table (MLflow's tables/)."""
    frames = []
    for name, evaluation in evaluations.items():
        frame = evaluation.by_slice.copy()
        frame.insert(0, "scorer", name)
        frame.insert(
            3,
            "label",
            [label(str(s), str(v)) for s, v in zip(frame["slice"], frame["value"], strict=True)],
        )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _span(windows: Mapping[str, str], name: str) -> str:
    """A half-open window [start, end) as its first and last day."""
    start = pd.Timestamp(windows[f"{name}_start"])
    last = pd.Timestamp(windows[f"{name}_end"]) - pd.Timedelta(days=1)
    return f"{start:%Y-%m-%d} to {last:%Y-%m-%d}"


def _headline(metrics: pd.DataFrame, metric: str) -> str:
    """The candidate's test metric against the best rule's, e.g. ``test roc_auc 0.5770
    against the best rule rate_by_gender's 0.5700``."""
    text = f"test {metric} {float(metrics.loc[CANDIDATE, metric]):.4f}"
    rules = metrics.drop(index=[CANDIDATE, ORACLE], errors="ignore")[metric].dropna()
    if rules.empty:
        return text
    best = str(rules.sort_values(ascending=not higher_is_better(metric)).index[0])
    return f"{text} against the best rule {best}'s {float(rules[best]):.4f}"


def _trained_on(windows: Mapping[str, str], train: int, validation: int, test: int) -> str:
    return (
        f"trained on {_span(windows, 'train')} ({train:,} examples), validated on "
        f"{_span(windows, 'validation')} ({validation:,}), tested on "
        f"{_span(windows, 'test')} ({test:,})"
    )


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
    new model version. Its metadata shows the ROC, gains and calibration plots, every
    scorer's metrics overall and per slice (a missing one says why), and links to the run,
    the version and the experiment's runs in MLflow's UI."""
    step_started = dt.datetime.now(dt.UTC)
    params = parameters.load()
    evaluation = params.evaluation
    examples = warehouse.read_table(TRAINING_EXAMPLES, order_by="as_of, customer_id, order_id")
    split = time_gapped_split(examples, **params.split.model_dump())
    train, validation, test = split.train, split.validation, split.test

    started = time.perf_counter()
    model = PropensityModel(**params.model.estimator_params()).fit(
        train,
        train["label"],
        eval_set=(validation, validation["label"]),
        progress=_training_progress(context.log, len(train)),
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
    # Small PNGs shown in the Dagster UI (MLflow keeps the full-size figures).
    pngs = {name.removesuffix(".png"): figure_png(figure) for name, figure in figures.items()}
    label = slice_labeller(evaluation.slices.bucketed)
    windows = split.windows.as_dict()
    data_window = {
        **windows,
        "train_examples": str(len(train)),
        "validation_examples": str(len(validation)),
        "test_examples": str(len(test)),
        "dropped_in_gaps": str(split.dropped_in_gaps),
    }
    gate_metric = params.gate.metric
    description = (
        f"CatBoost candidate {_trained_on(windows, len(train), len(validation), len(test))}; "
        f"{_headline(metrics, gate_metric)}"
    )
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
            "metrics_by_slice": _slices_table(evaluations, label),
            "feature_importance": model.feature_importance_table(),
        },
        input_example=test.head(5),
        features=test,
        tags={"dagster.run_id": context.run.run_id},
        description=f"{description}; awaiting the promotion gate",
        start_time=step_started,
    )
    drift_reference = record_drift_reference(warehouse, tracker.client, run_id, model, params)
    ref = registry.open(params.registry).register(run_id)
    tracker.end_now(run_id)
    experiment_id = tracker.experiment_id()
    view = tracker.save_runs_view(
        [
            *metric_names(list(evaluation.top_k_percents)),
            *(f"baseline.{name}.{gate_metric}" for name in scores if name != CANDIDATE),
            "fit_seconds",
        ]
    )
    uri = tracker.tracking_uri
    oracle_auc = float(evaluations[ORACLE].overall["roc_auc"]) if oracle is not None else None
    candidate = Candidate(
        ref=ref,
        test=test.reset_index(drop=True),
        scores={k: v for k, v in scores.items() if k != ORACLE},
        baselines=baselines,
        metrics=metrics,
        windows=windows,
        oracle_auc=oracle_auc,
        sizes={"train": len(train), "validation": len(validation), "test": len(test)},
        description=description,
    )
    top = metrics.loc[CANDIDATE]
    return dg.Output(
        candidate,
        metadata={
            "model": ref.label(),
            "description": description,
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
            "roc": dg.MetadataValue.md(image_markdown("ROC", pngs["roc"])),
            "gains": dg.MetadataValue.md(image_markdown("gains and lift", pngs["gains"])),
            "calibration": dg.MetadataValue.md(image_markdown("calibration", pngs["calibration"])),
            "metrics_vs_baselines": dg.MetadataValue.md(_readable_metrics(evaluations)),
            "metrics_by_slice": dg.MetadataValue.md(
                _readable_slices(evaluations, gate_metric, label)
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
    step_started = dt.datetime.now(dt.UTC)
    params = parameters.load()
    gate, evaluation = params.gate, params.evaluation
    reg = registry.open(params.registry)
    candidate = candidate_model
    y = candidate.test["label"].to_numpy(dtype=np.float64)
    contenders = {k: v for k, v in candidate.scores.items() if k != CANDIDATE}
    current = reg.champion()
    if current is not None:
        scorer = reg.load_scorer(current)
        contenders["champion"] = np.asarray(scorer.predict(candidate.test), dtype=np.float64)
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
                _markdown(comparisons.set_index("contender")) if len(comparisons) else "(none)"
            ),
        },
    )


def _register_best_baseline(
    reg: Registry,
    tracker: Tracker,
    candidate: Candidate,
    metric: str,
    reason: str,
    started: dt.datetime,
) -> ModelRef:
    table = candidate.metrics.drop(index=[CANDIDATE, ORACLE], errors="ignore")
    best_name = str(table[metric].sort_values(ascending=not higher_is_better(metric)).index[0])
    best = candidate.baselines[best_name]
    value = float(table.loc[best_name, metric])
    sizes = candidate.sizes or {}
    description = (
        f"Rule baseline {best_name} fitted on {_span(candidate.windows, 'train')}"
        f" ({sizes.get('train', 0):,} examples), tested on {_span(candidate.windows, 'test')}"
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
        features=candidate.test,
        tags={"fallback_reason": reason[:4000]},
        description=description,
        start_time=started,
    )
    ref = reg.register(run_id)
    reg.promote(ref, f"fallback: {reason}")
    return ref


def _training_progress(
    log: dg.DagsterLogManager, rows: int, every_seconds: float = 10.0
) -> Callable[[int, int, float | None], None]:
    """The fit's progress as a line every tenth of its iterations or every
    ``every_seconds`` (whichever comes first), in the run's log (the UI shows it) and on
    the terminal that started the run."""
    from orchestration.progress import note

    last = {"at": time.monotonic(), "shown": 0}

    def report(iteration: int, most: int, loss: float | None) -> None:
        now = time.monotonic()
        step = max(1, most // 10)
        if iteration // step == last["shown"] // step and now - last["at"] < every_seconds:
            return
        last.update(at=now, shown=iteration)
        line = f"training on {rows:,} examples: iteration {iteration} of at most {most}"
        if loss is not None:
            line += f", validation loss {loss:.4f}"
        log.info(line)
        note(line)

    return report
