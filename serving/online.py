"""Online learning in the server: `POST /learn` feeds a realised outcome to the champion
when the champion is an online model (ml/online.py).

The design, the simplest that is correct:

- **Which model learns.** Only the champion, and only when the champion alias points at
  an online model (the gate put it there like any candidate). /score and /learn read the
  one alias, so what learns is what scores; with a batch champion /learn answers 409. A
  second, non-champion online model answering beside it would be a shadow or canary
  deployment (which scores count, how the two are compared): not built.
- **One learner.** River models are not safe for concurrent ``learn_one``. Each online
  champion gets one ``OnlineLearner`` thread, the only caller of ``learn_one`` on the
  live model it owns; requests put their example on its queue and wait for its answer.
  It drains what is waiting, and for each example first scores it with the live model
  (progressive validation: the running ROC-AUC and log loss `GET /model` shows), then
  learns it, exactly once. Requests answer in any order; each example is learnt once.
- **What scores.** Scoring workers never touch the live model: after each drained batch
  the learner publishes a copy, swapped in whole, that the workers read. A score never
  sees a model halfway through an update, and reading never races learning; a /learn
  answered has been published, so the next /score sees it. Workers score with the copy
  one at a time: River's reads are not pure either (a feature level it has not seen is
  added to its running statistics as it is looked up).
- **What is lost.** The learnt state lives in this process: a restart, or the alias
  moving to another version, starts again from the registered version (the old learner
  finishes what was queued and stops). Writing the learnt state back as a new version,
  gated, is not done.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from river import metrics

from ml.online import ROC_AUC_THRESHOLDS, OnlineModel

log = logging.getLogger("nextbuy.serving")

_STOP = object()


class LearnerStopped(RuntimeError):
    """The learner has stopped (its champion was replaced): nothing more is learnt."""


@dataclass(frozen=True)
class Learnt:
    """What the learner did with one example."""

    # The live model's probability for the example just before it learnt it.
    score_before: float
    # Examples learnt by this learner so far, this one included.
    learned: int


@dataclass
class _Example:
    row: Mapping[str, Any]
    label: int
    future: Future[Learnt] = field(default_factory=Future)


class OnlineLearner:
    """The one thread that lets an online model learn, and the copy scoring reads."""

    def __init__(self, model: OnlineModel, name: str = "online-learner") -> None:
        self._live = copy.deepcopy(model)
        self.published = copy.deepcopy(model)
        self._reading = threading.Lock()
        # Submitting and stopping exclude each other: nothing is queued behind the stop.
        self._lifecycle = threading.Lock()
        self._stopped = False
        self.learned = 0
        self.positives = 0
        self._roc_auc = metrics.ROCAUC(n_thresholds=ROC_AUC_THRESHOLDS)
        self._log_loss = metrics.LogLoss()
        self._status: dict[str, Any] = self._snapshot()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, row: Mapping[str, Any], label: int) -> Future[Learnt]:
        """Queue one example (a customer_features row and its realised label)."""
        example = _Example(row, label)
        with self._lifecycle:
            if self._stopped:
                raise LearnerStopped("the online model stopped learning: its champion was replaced")
            self._queue.put(example)
        return example.future

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Scores of the published model (the one as of the last drained batch)."""
        with self._reading:
            return self.published.predict_proba(frame)

    def status(self) -> dict[str, Any]:
        """Examples learnt since the server loaded the version, and how the model scored
        them before learning each (progressive validation)."""
        return dict(self._status)

    def stop(self) -> None:
        """Learn what is queued, then stop (again: nothing)."""
        with self._lifecycle:
            if self._stopped:
                return
            self._stopped = True
            self._queue.put(_STOP)
        self._thread.join()

    def _snapshot(self) -> dict[str, Any]:
        # Before both labels were seen an AUC means nothing: None, not River's 0.
        both = 0 < self.positives < self.learned
        return {
            "learned": self.learned,
            "positives": self.positives,
            "progressive_roc_auc": float(self._roc_auc.get()) if both else None,
            "progressive_log_loss": float(self._log_loss.get()) if self.learned else None,
            "label_delay_days": self._live.label_delay_days,
            "trained_on": getattr(self._live, "learned_", 0) - self.learned,
        }

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while item is not _STOP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
            done: list[tuple[_Example, Learnt | BaseException]] = []
            for example in batch:
                if example is _STOP:
                    continue
                try:
                    done.append((example, self._learn(example)))
                except Exception as e:  # answer the request; keep learning the others
                    log.exception("online learning failed")
                    done.append((example, e))
            self.published = copy.deepcopy(self._live)
            self._status = self._snapshot()
            for example, outcome in done:
                if isinstance(outcome, BaseException):
                    example.future.set_exception(outcome)
                else:
                    example.future.set_result(outcome)
            if batch[-1] is _STOP:
                return

    def _learn(self, example: _Example) -> Learnt:
        label = bool(example.label)
        proba = self._live.predict_proba_one(dict(example.row))
        self._roc_auc.update(label, proba)
        self._log_loss.update(label, proba)
        self._live.learn_one(dict(example.row), label)
        self.learned += 1
        self.positives += int(label)
        return Learnt(score_before=float(proba.get(True, 0.0)), learned=self.learned)
