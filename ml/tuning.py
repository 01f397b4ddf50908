"""Hyperparameter search on the backtest folds: an Optuna study, seeded and budgeted.

A trial is one set of CatBoost settings fitted on every fold (its train window, early
stopping on its validation window, trees kept past each fold's best); its value is the
peak of the folds' mean validation curve, the same rule that chooses the number of
trees (``ml.backtest.mean_curve_best``). No test window is looked at: the settings are
chosen on validation windows only, so the backtest's test metrics stay honest.

The first trial is always the settings as configured, so the search can only keep them or
find better ones on the validation windows; the study stops after ``trials`` trials or
once ``timeout_seconds`` have passed (a trial that started finishes). The sampler is
Optuna's TPE with a fixed seed: the same data and budget give the same trials, as long
as the time limit does not cut the study short.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ml.backtest import mean_curve, mean_curve_best

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Range:
    """A numeric setting's search range; integers when both ends are integers."""

    low: float
    high: float
    log: bool = False

    @property
    def integer(self) -> bool:
        return float(self.low).is_integer() and float(self.high).is_integer() and not self.log


@dataclass
class Trial:
    number: int
    settings: dict[str, Any]
    # Peak of the folds' mean validation curve, and the trees at that peak.
    value: float
    trees: int
    seconds: float


@dataclass
class Tuning:
    """The study's trials and the best one's settings and fitted fold models."""

    trials: list[Trial]
    best: Trial
    # The best trial's models, one per fold (oldest first), trees kept past the best.
    models: list[Any]

    def table(self) -> pd.DataFrame:
        """One row per trial: its settings, value, trees and seconds (for logging)."""
        return pd.DataFrame(
            [
                {
                    "trial": t.number,
                    **t.settings,
                    "value": t.value,
                    "trees": t.trees,
                    "seconds": t.seconds,
                }
                for t in self.trials
            ]
        )


def tune(
    fit_folds: Callable[[dict[str, Any], int], Sequence[Any]],
    defaults: Mapping[str, Any],
    space: Mapping[str, Range],
    *,
    trials: int,
    timeout_seconds: float,
    seed: int,
) -> Tuning:
    """Run the study. ``fit_folds(settings, trial_number)`` fits one model per fold with
    ``settings`` (the searched keys only; the caller merges them into the rest) and
    returns them; each model has ``validation_curve_`` (higher is better).

    >>> import numpy as np
    >>> from ml.tuning import Range, tune
    >>> class Curve:
    ...     def __init__(self, depth):
    ...         self.validation_curve_ = np.array([0.5, 0.6 - abs(depth - 6) / 100])
    >>> result = tune(lambda s, n: [Curve(s["depth"])] * 2, {"depth": 4},
    ...     {"depth": Range(2, 8)}, trials=12, timeout_seconds=60, seed=0)
    >>> result.trials[0].settings, result.best.settings["depth"], result.best.trees
    ({'depth': 4}, 6, 2)
    """
    import optuna

    if trials < 1:
        raise ValueError(f"tuning: trials ({trials}) must be at least 1")
    unknown = set(space) - set(defaults)
    if unknown:
        raise ValueError(f"tuning: {sorted(unknown)} are searched but have no configured value")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({name: defaults[name] for name in space})
    done: list[Trial] = []
    models_of: dict[int, list[Any]] = {}

    def objective(trial: optuna.Trial) -> float:
        settings = {name: _suggest(trial, name, r) for name, r in space.items()}
        started = time.perf_counter()
        models = list(fit_folds(settings, trial.number))
        curves = [np.asarray(m.validation_curve_, dtype=np.float64) for m in models]
        trees = mean_curve_best(curves)
        value = float(mean_curve(curves)[trees - 1])
        done.append(Trial(trial.number, settings, value, trees, time.perf_counter() - started))
        models_of[trial.number] = models
        # Keep only the best trial's models in memory.
        best = max(done, key=lambda t: t.value)
        for number in list(models_of):
            if number != best.number:
                del models_of[number]
        return value

    study.optimize(objective, n_trials=trials, timeout=timeout_seconds)
    best = max(done, key=lambda t: t.value)
    return Tuning(trials=done, best=best, models=models_of[best.number])


def _suggest(trial: Any, name: str, r: Range) -> Any:
    if r.integer:
        return trial.suggest_int(name, int(r.low), int(r.high))
    return trial.suggest_float(name, float(r.low), float(r.high), log=r.log)
