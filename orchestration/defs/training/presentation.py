"""How the training step presents what it did: the tables, sentences and progress lines
its assets put in Dagster's metadata, MLflow's descriptions and the terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import dagster as dg
import pandas as pd

from ml import higher_is_better
from ml.metrics import Evaluation, slice_comparison
from ml.tuning import Tuning
from orchestration.defs.training.candidates import CATBOOST, LOGISTIC, MODELS, ONLINE, REFERENCES


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    return frame.round(digits).to_markdown() if not frame.empty else "(empty)"


def text_markdown(frame: pd.DataFrame) -> str:
    """A table of text (``ml.metrics``' readable tables) as markdown: the text as it is,
    labels and notes left, numbers right; a ``note`` column only when a row has one."""
    if frame.empty:
        return "(empty)"
    if "note" in frame and not frame["note"].astype(bool).any():
        frame = frame.drop(columns="note")
    align = ["left" if c in ("scorer", "slice", "note") else "right" for c in frame.columns]
    return str(frame.to_markdown(index=False, disable_numparse=True, colalign=align))


def readable_metrics(evaluations: Mapping[str, Evaluation], metrics: pd.DataFrame) -> str:
    """Every scorer's test metrics as a markdown table, a missing one with its reason;
    the expected ROC-AUC under the true probabilities when there is a truth table."""
    rows = []
    for name, ev in evaluations.items():
        row = {"scorer": name, **ev.readable_overall()}
        if "expected_roc_auc" in metrics:
            row["expected roc_auc"] = f"{float(metrics.loc[name, 'expected_roc_auc']):.4f}"
        rows.append(row)
    return text_markdown(pd.DataFrame(rows))


def readable_slices(
    evaluations: Mapping[str, Evaluation], metric: str, label: Callable[[str, str], str]
) -> str:
    """The gate's metric per slice for every scorer side by side, then each scorer's
    metrics per slice, as markdown; a missing value says why."""
    parts = [
        f"**{metric} by slice**",
        text_markdown(slice_comparison(evaluations, metric, label)),
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
        parts += [heading, text_markdown(table)]
    return "\n\n".join(parts)


def slices_table(
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


def span(windows: Mapping[str, str], name: str) -> str:
    """A half-open window [start, end) as its first and last day."""
    start = pd.Timestamp(windows[f"{name}_start"])
    last = pd.Timestamp(windows[f"{name}_end"]) - pd.Timedelta(days=1)
    return f"{start:%Y-%m-%d} to {last:%Y-%m-%d}"


def headline(metrics: pd.DataFrame, name: str, metric: str) -> str:
    """The candidate's test metric against the best rule's, e.g. ``test roc_auc 0.5770
    against the best rule rate_by_gender's 0.5700``."""
    text = f"test {metric} {float(metrics.loc[name, metric]):.4f}"
    rules = metrics.drop(index=[*MODELS, *REFERENCES], errors="ignore")[metric].dropna()
    if rules.empty:
        return text
    best = str(rules.sort_values(ascending=not higher_is_better(metric)).index[0])
    return f"{text} against the best rule {best}'s {float(rules[best]):.4f}"


def trained_on(windows: Mapping[str, str], sizes: Mapping[str, int]) -> str:
    return (
        f"trained on {span(windows, 'train')} ({sizes['train']:,} examples), validated "
        f"and calibrated on {span(windows, 'validation')} ({sizes['validation']:,}), "
        f"tested on {span(windows, 'test')} ({sizes['test']:,})"
    )


def calibration_sentence(calibration: pd.DataFrame, name: str) -> str:
    """E.g. ``mean score 0.262 against a rate of 0.267 (0.199 before calibration),
    calibration error 0.012 (0.068 before); every fold's roc_auc unchanged``."""
    rows = calibration[calibration["scorer"] == name].set_index("scores")
    if "before" not in rows.index:  # the online model: it keeps learning, nothing maps it
        learnt = rows.iloc[0]
        return (
            f"mean score {learnt['mean score']:.3f} against a rate of {learnt['rate']:.3f}, "
            f"calibration error {learnt['calibration error (ECE)']:.3f} (not Platt-scaled: "
            "a fixed mapping would be stale after its first learnt outcome)"
        )
    before, after = rows.loc["before"], rows.loc["after"]
    unchanged = "unchanged" if bool(after["fold AUCs unchanged"]) else "CHANGED"
    return (
        f"mean score {after['mean score']:.3f} against a rate of {after['rate']:.3f} "
        f"({before['mean score']:.3f} before calibration), calibration error "
        f"{after['calibration error (ECE)']:.3f} ({before['calibration error (ECE)']:.3f} "
        f"before); every fold's roc_auc {unchanged}"
    )


def model_title(name: str) -> str:
    titles = {CATBOOST: "CatBoost", LOGISTIC: "Logistic-regression", ONLINE: "Online (River)"}
    return titles.get(name, name)


def tuning_sentence(tuning: Tuning | None) -> str:
    """E.g. ``3 trials in 71 s; trial 2 best (depth 5, learning_rate 0.081, ...):
    validation AUC 0.6031 against 0.5987 as configured``."""
    if tuning is None:
        return "no search (tuning.trials is 1): model.catboost as configured"
    configured = tuning.trials[0]
    settings = ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in tuning.best.settings.items()
    )
    seconds = sum(t.seconds for t in tuning.trials)
    return (
        f"{len(tuning.trials)} trials in {seconds:.0f} s; trial {tuning.best.number + 1} best "
        f"({settings}, {tuning.best.trees} trees): mean validation AUC {tuning.best.value:.4f} "
        f"against {configured.value:.4f} as configured"
    )


def folds_markdown(folds: pd.DataFrame, metric: str) -> str:
    table = folds.copy()
    for column in table.columns[4:]:
        table[column] = table[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:.4f}")
    table = table.astype(str)
    return f"**{metric} per test window**\n\n" + text_markdown(table)


def fit_progress(
    log: dg.DagsterLogManager, every_seconds: float = 10.0
) -> Callable[[str, int], Callable[[int, int, float | None], None]]:
    """For each CatBoost fit (a trial's, a fold's), its progress as a line every tenth of
    its iterations or every ``every_seconds`` (whichever comes first), in the run's log
    (the UI shows it) and on the terminal that started the run."""
    from orchestration.progress import note

    def for_fit(label: str, rows: int) -> Callable[[int, int, float | None], None]:
        last = {"at": time.monotonic(), "shown": 0}

        def report(iteration: int, most: int, loss: float | None) -> None:
            now = time.monotonic()
            step = max(1, most // 10)
            if iteration // step == last["shown"] // step and now - last["at"] < every_seconds:
                return
            last.update(at=now, shown=iteration)
            line = (
                f"{label}: catboost on {rows:,} examples, iteration {iteration} of at most {most}"
            )
            if loss is not None:
                line += f", validation loss {loss:.4f}"
            log.info(line)
            note(line)

        return report

    return for_fit
