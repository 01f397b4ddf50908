"""Training with a rolling-origin backtest against one fit on one window, side by side:
wall time, and each scorer's AUC, expected AUC under the true probabilities, and share of
the observable ceiling.

    .venv/bin/python benchmarks/training.py                  # the default shop and 1M customers
    .venv/bin/python benchmarks/training.py --users 20000    # a quick run

Per size, in a fresh NEXTBUY_HOME: `nextbuy simulate --users N` (behavioural, ending
2026-10-31) and `nextbuy features` (the marts). Then, in this process, on the same
training_examples and parameters.yaml:

- **single fit** (training before the backtest): one time-gapped split, CatBoost with
  early stopping on its validation window, measured on its test window;
- **backtest** (what `candidate_model` does now): the tuning study (`tuning:`, within
  its time limit), then `split.folds` folds, CatBoost (trees chosen on the folds' mean
  validation curve), the logistic challenger and the rules on every fold, Platt
  calibration, measured on the pooled test windows.

Expected AUC is the AUC expected under the simulator's true probabilities (label noise
removed); the share of the observable ceiling is (expected AUC - 0.5) / (the ceiling's
expected AUC - 0.5), the ceiling being the Bayes posterior given what the warehouse shows
(thelook/ceiling.py), computed on the same test rows. On the backtest, AUCs count pairs
within one test window, as the pipeline's report does (each window has its own model).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _measure import machine, nextbuy  # noqa: E402

END = dt.date(2026, 10, 31)


def _shares(
    oracle: np.ndarray,
    ceiling: np.ndarray,
    scores: dict[str, np.ndarray],
    y: np.ndarray,
    folds: np.ndarray | None = None,
) -> dict[str, Any]:
    """AUC, expected AUC and share of the ceiling; with ``folds``, pairs within a fold."""
    from ml.metrics import expected_roc_auc, metric_value

    ceiling_expected = expected_roc_auc(oracle, ceiling, folds)
    out: dict[str, Any] = {}
    for name, values in {**scores, "ceiling": ceiling, "oracle": oracle}.items():
        expected = expected_roc_auc(oracle, values, folds)
        out[name] = {
            "auc": round(metric_value("roc_auc", y, values, folds), 4),
            "expected_auc": round(expected, 4),
            "ceiling_share": round((expected - 0.5) / (ceiling_expected - 0.5), 3),
        }
    return out


def bench(users: int, work: Path) -> dict[str, Any]:
    import duckdb

    from ml import PropensityModel, time_gapped_split
    from orchestration.defs.training.candidates import backtest_all, measure
    from orchestration.settings import load_parameters
    from thelook.ceiling import observable_posterior

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ["NEXTBUY_HOME"] = str(work)
    nextbuy("simulate", "--users", str(users), "--end", str(END))
    nextbuy("features", "--as-of", (END + dt.timedelta(days=1)).isoformat())
    params = load_parameters()
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    examples = con.execute(
        "select * from marts.training_examples order by as_of, customer_id, order_id"
    ).df()
    truth = con.execute("select order_id, p_target from truth.orders").df()
    truth = truth.set_index("order_id")["p_target"]

    def references(order_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        posterior = observable_posterior(con, order_ids).reindex(order_ids)
        return truth.reindex(order_ids).to_numpy(), posterior.to_numpy()

    started = time.perf_counter()
    split = time_gapped_split(examples, **params.split.windows())
    model = PropensityModel(**params.model.estimator_params()).fit(
        split.train, split.train["label"], eval_set=(split.validation, split.validation["label"])
    )
    single_scores = model.predict_proba(split.test)
    single_seconds = time.perf_counter() - started
    oracle, ceiling = references(split.test["order_id"].to_numpy())
    y = split.test["label"].to_numpy(dtype=np.float64)
    single = {
        "seconds": round(single_seconds, 1),
        "test_rows": len(split.test),
        "trees": model.tree_count_,
        "scorers": _shares(oracle, ceiling, {"catboost": single_scores}, y),
    }

    started = time.perf_counter()
    backtest, tuning = backtest_all(examples, params, lambda label, rows: lambda *_: None)
    fit_seconds = time.perf_counter() - started
    oracle, ceiling = references(backtest.test["order_id"].to_numpy())
    measured = measure(backtest, params, oracle, ceiling)
    backtest_seconds = time.perf_counter() - started
    y = backtest.test["label"].to_numpy(dtype=np.float64)
    con.close()
    return {
        "users": users,
        "train_examples": len(examples),
        "single_fit": single,
        "backtest": {
            "seconds": round(backtest_seconds, 1),
            "fit_seconds": round(fit_seconds, 1),
            "fit_seconds_by_scorer": {k: round(v, 1) for k, v in backtest.fit_seconds.items()},
            "folds": len(backtest.folds),
            "test_rows": len(backtest.test),
            "trees": backtest.trees,
            "tuning_trials": None if tuning is None else len(tuning.trials),
            "tuning_best": None if tuning is None else tuning.best.settings,
            "fold_best_iterations": [f.best_iteration for f in backtest.folds],
            "candidate": measured.candidate,
            "selection": measured.selection_sentence(),
            "scorers": _shares(
                oracle, ceiling, measured.scores, y, backtest.test["fold"].to_numpy()
            ),
        },
    }


def main() -> None:
    from orchestration.settings import load_parameters

    default_users = load_parameters().simulation.users
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[default_users, 1_000_000])
    parser.add_argument("--keep", action="store_true", help="keep benchmarks/.work/")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    work = HERE / ".work" / "training"
    try:
        for users in args.users:
            print(json.dumps(bench(users, work / f"users_{users}")), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
