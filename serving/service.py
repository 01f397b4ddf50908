"""The scoring service behind the API: workers that batch requests, and the state they
read (the warehouse snapshot with its feature engines, the champion), kept current by a
background poller.

Kept whole: the workers, the poller and the state they share are one mechanism; split,
each part would need the others' locks and invariants spelled out again.

An id request for the warehouse copy's as-of date, with a batch champion, is answered
at once in the caller's thread (the event loop's) from the state's index of stored rows
and their scores (serving/stored.py): nothing is queued, queried or scored per request.
Every other request is queued; each worker takes what is waiting (up to ``max_batch``),
computes the features of the whole batch with one run of the compiled dbt chain per
as-of date, and scores them with one call of the champion. Under load batches grow and
the fixed cost of planning the SQL and calling the model is shared; a lone request runs
at once, as a batch of one.

The state (warehouse copy, champion, the index) is one immutable object that the poller
replaces whole, after building the new one beside the old. A request answered at once
reads it once, and a worker reads it once per batch, so a batch is computed from one
warehouse snapshot and scored by one champion, and a swap (new data, a moved alias) is
seen by the next request or batch: no request sees a half-loaded model or snapshot, and
none waits for a load.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from orchestration.environment import Environment, current_environment
from serving.champion import Champion, load_champion, open_registry
from serving.compiled import CompiledFeatures, compile_features
from serving.features import FeatureEngine, History
from serving.online import LearnerStopped, Learnt, OnlineLearner
from serving.predictions import Prediction, PredictionLog, default_log_path
from serving.snapshot import FileState, SnapshotError, WarehouseBusy, WarehouseSnapshot
from serving.stored import StoredFeatures, StoredScores, feature_frame

log = logging.getLogger("nextbuy.serving")

# How a score's features were obtained (the predictions log's `path`).
PATH_FEATURES = "features"
PATH_WAREHOUSE_HISTORY = "warehouse_history"
PATH_REQUEST_HISTORY = "request_history"

# Significant digits of floats in the features hash: equal features hash equally even
# when two computations differ in the last bits of a double.
HASH_DIGITS = 12


@dataclass(frozen=True)
class ServingConfig:
    """What the server may be asked to tune; the defaults are what `nextbuy serve` uses."""

    # A history of more items is refused (413).
    max_items: int = 10_000
    # Threads that compute and score; each owns a feature engine (an in-memory DuckDB).
    workers: int = 2
    # Requests computed and scored together, at most.
    max_batch: int = 64
    # Requests waiting beyond this are refused (503) rather than queued.
    max_queue: int = 10_000
    # How often the champion alias and the warehouse file are checked.
    alias_poll_seconds: float = 5.0
    warehouse_poll_seconds: float = 10.0
    # The warehouse is copied again once its file has stopped changing for this long: a
    # batch run writes it many times, and a copy in between would be of half a run.
    warehouse_quiet_seconds: float = 30.0
    log_flush_seconds: float = 1.0
    # Default: $NEXTBUY_HOME/serving/predictions.duckdb.
    predictions_path: Path | None = None


class ScoreError(Exception):
    """A request that cannot be scored, with the HTTP status that says why."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class Scored:
    customer_id: int
    as_of: dt.date
    score: float
    model: Mapping[str, str]
    features_hash: str
    features: Mapping[str, Any]
    path: str


@dataclass
class Job:
    customer_id: int
    as_of: dt.date | None
    # None: the warehouse's data of customer_id.
    history: History | None
    requested_at: dt.datetime
    future: Future[Scored] = field(default_factory=Future)
    # False: the features of a /learn example, not a prediction for the log.
    logged: bool = True


@dataclass(frozen=True)
class FeatureState:
    """What changes with the warehouse: its snapshot, the engines holding its catalogue
    and its customer_features rows by customer id."""

    snapshot: WarehouseSnapshot
    engines: tuple[FeatureEngine, ...]
    stored: StoredFeatures


@dataclass(frozen=True)
class State:
    """What requests are answered from; replaced whole, never changed."""

    features: FeatureState | None = None
    champion: Champion | None = None
    # The stored rows scored by the champion (None: either is missing, or the champion
    # learns online).
    scores: StoredScores | None = None


_STOP = object()


class ScoringService:
    """Workers, state and poller of one server process."""

    def __init__(
        self,
        env: Environment | None = None,
        config: ServingConfig | None = None,
        *,
        compiled: CompiledFeatures | None = None,
    ) -> None:
        from orchestration.settings import load_parameters

        self.env = env or current_environment()
        self.config = config or ServingConfig()
        self.params = load_parameters()
        self.compiled = compiled
        self.warehouse = self.env.warehouse_path
        self.registry = open_registry(self.env, self.params.registry)
        self.predictions = PredictionLog(
            self.config.predictions_path or default_log_path(self.env.home),
            flush_seconds=self.config.log_flush_seconds,
        )
        self.state = State()
        self.started_at: dt.datetime | None = None
        self.errors: dict[str, str] = {}
        self.reloads = {"champion": 0, "warehouse": 0}
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.config.max_queue)
        self._workers: list[threading.Thread] = []
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._accepting = False
        self._seen_state: Any = None
        self._seen_at = 0.0

    @property
    def features(self) -> FeatureState | None:
        return self.state.features

    @property
    def champion(self) -> Champion | None:
        return self.state.champion

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Compile the features, copy the warehouse, load the champion, start the threads.

        A missing warehouse or customer_features stops the start; a warehouse locked by a
        batch run, or no champion yet, do not: /score answers 503 until the poller has
        them."""
        if self.compiled is None:
            self.compiled = compile_features(self.env, self.params.dbt_vars())
        try:
            self._load_features()
        except WarehouseBusy as e:
            self.errors["warehouse"] = str(e)
        self._poll_champion()
        self.predictions.start()
        for index in range(self.config.workers):
            worker = threading.Thread(
                target=self._work, args=(index,), name=f"scoring-{index}", daemon=True
            )
            worker.start()
            self._workers.append(worker)
        self._poller = threading.Thread(target=self._poll, name="serving-poller", daemon=True)
        self._poller.start()
        self.started_at = dt.datetime.now(dt.UTC)
        self._accepting = True

    def stop(self) -> None:
        """Finish what is queued, stop the threads, write the last predictions."""
        self._accepting = False
        self._stop.set()
        for _ in self._workers:
            self._queue.put(_STOP)
        for worker in self._workers:
            worker.join()
        self._workers.clear()
        if self._poller is not None:
            self._poller.join()
            self._poller = None
        if self.champion is not None and self.champion.learner is not None:
            self.champion.learner.stop()
        self.predictions.close()

    # -- requests -----------------------------------------------------------------------

    def submit(self, job: Job) -> Future[Scored]:
        if not self._accepting:
            raise ScoreError(503, "the server is not accepting requests (starting or stopping)")
        if job.history is not None and len(job.history.items) > self.config.max_items:
            raise ScoreError(
                413,
                f"the history holds {len(job.history.items):,} items, more than the "
                f"{self.config.max_items:,} this server accepts (max_items)",
            )
        if job.history is None and self._answer_stored(job):
            return job.future
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise ScoreError(
                503, f"{self.config.max_queue:,} requests are already waiting: try again"
            ) from None
        return job.future

    def learn(self, row: Mapping[str, Any], label: int) -> Future[Learnt]:
        """Queue one realised outcome for the online champion's learner."""
        try:
            return self.learner().submit(row, label)
        except LearnerStopped as e:
            raise ScoreError(503, f"{e}: try again") from None

    def learner(self) -> OnlineLearner:
        """The champion's learner; 409 when the champion does not learn online."""
        champion = self.champion
        if champion is None:
            raise ScoreError(503, self.errors.get("champion", "no champion loaded yet"))
        if champion.learner is None:
            raise ScoreError(
                409,
                f"the champion {champion.ref.label()} does not learn online: /learn feeds "
                "an online champion only (ml/online.py)",
            )
        return champion.learner

    def health(self) -> dict[str, Any]:
        features, champion = self.features, self.champion
        snapshot = features.snapshot if features else None
        ready = self._accepting and features is not None and champion is not None
        return {
            "status": "ok" if ready else "unavailable",
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "champion": champion.summary if champion else None,
            "features": {
                "as_of": snapshot.as_of.isoformat() if snapshot and snapshot.as_of else None,
                "customers": snapshot.customers if snapshot else 0,
                "warehouse": str(self.warehouse),
                "copied_at": snapshot.loaded_at.isoformat() if snapshot else None,
                "copy_seconds": round(snapshot.seconds, 3) if snapshot else None,
                "dbt_compile_key": self.compiled.key if self.compiled else None,
                "dbt_version": self.compiled.dbt_version if self.compiled else None,
            },
            "queue": self._queue.qsize(),
            "workers": len(self._workers),
            "reloads": dict(self.reloads),
            "predictions": {
                "path": str(self.predictions.path),
                "written": self.predictions.written,
                "pending": self.predictions.pending,
                "dropped": self.predictions.dropped,
                "failed_writes": self.predictions.failed_writes,
            },
            "errors": dict(self.errors),
        }

    # -- state --------------------------------------------------------------------------

    def _load_features(self) -> None:
        assert self.compiled is not None
        snapshot = WarehouseSnapshot.load(self.warehouse)
        products = snapshot.products()
        engines = tuple(FeatureEngine(self.compiled, products) for _ in range(self.config.workers))
        features = FeatureState(
            snapshot=snapshot, engines=engines, stored=StoredFeatures.of(snapshot)
        )
        self._publish(features, self.state.champion)
        self._seen_state = snapshot.state
        self.errors.pop("warehouse", None)

    def _publish(self, features: FeatureState | None, champion: Champion | None) -> None:
        """Swap in a state of ``features`` and ``champion``, with the stored rows scored by
        a batch champion (computed first: until the swap, the old state serves)."""
        scores = None
        if features is not None and champion is not None:
            assert self.compiled is not None
            scores = StoredScores.of(features.stored, champion, self.compiled.column_names)
        self.state = State(features=features, champion=champion, scores=scores)

    def _poll_champion(self) -> bool:
        """Load the alias's version when it is not the one loaded; True when swapped."""
        try:
            ref = self.registry.champion()
            current = self.champion
            if ref is None:
                self.errors["champion"] = (
                    f"the registry has no '{self.registry.alias}' alias for "
                    f"{self.registry.model_name}: run the pipeline first"
                )
                return False
            if current is not None and current.ref.version == ref.version:
                return False
            self._publish(self.state.features, load_champion(self.registry, ref))
            if current is not None and current.learner is not None:
                current.learner.stop()  # what it learnt goes with it (serving/online.py)
        except Exception as e:  # keep serving with what is loaded
            self.errors["champion"] = f"{type(e).__name__}: {e}"
            log.exception("champion reload failed")
            return False
        self.errors.pop("champion", None)
        if current is not None:
            self.reloads["champion"] += 1
            log.info("champion is now %s", ref.label())
        return True

    def _poll_warehouse(self) -> bool:
        """Copy the warehouse again once its file changed and then stayed unchanged for
        ``warehouse_quiet_seconds``; True when swapped."""
        features = self.features
        state = FileState.of(self.warehouse)
        if features is not None and state == features.snapshot.state:
            return False
        now = time.monotonic()
        if state != self._seen_state:
            self._seen_state, self._seen_at = state, now
            if self.config.warehouse_quiet_seconds > 0:
                return False
        if now - self._seen_at < self.config.warehouse_quiet_seconds:
            return False
        try:
            self._load_features()
        except (WarehouseBusy, SnapshotError) as e:
            self.errors["warehouse"] = str(e)
            return False
        except Exception as e:
            self.errors["warehouse"] = f"{type(e).__name__}: {e}"
            log.exception("warehouse copy failed")
            return False
        if features is not None:
            self.reloads["warehouse"] += 1
        return True

    def _poll(self) -> None:
        next_alias = time.monotonic() + self.config.alias_poll_seconds
        next_warehouse = time.monotonic() + self.config.warehouse_poll_seconds
        while True:
            wait = max(0.0, min(next_alias, next_warehouse) - time.monotonic())
            if self._stop.wait(wait):
                return
            now = time.monotonic()
            if now >= next_alias:
                self._poll_champion()
                next_alias = time.monotonic() + self.config.alias_poll_seconds
            if now >= next_warehouse:
                self._poll_warehouse()
                next_warehouse = time.monotonic() + self.config.warehouse_poll_seconds

    # -- workers ------------------------------------------------------------------------

    def _work(self, index: int) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            batch = [job]
            while len(batch) < self.config.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:  # another worker's: leave it for the next get
                    self._queue.put(_STOP)
                    break
                batch.append(more)
            try:
                self._process(index, batch)
            except Exception as e:  # never leave a request without an answer
                log.exception("scoring batch failed")
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(
                            ScoreError(500, f"scoring failed: {type(e).__name__}: {e}")
                        )

    def _answer_stored(self, job: Job) -> bool:
        """Answer an id request from the state's stored rows and scores, at once; False
        when it needs a worker (another as_of, an online champion, not ready)."""
        state = self.state
        features, champion, scores = state.features, state.champion, state.scores
        if features is None or champion is None or scores is None:
            return False
        stored = features.stored
        if stored.as_of is None or job.as_of not in (None, stored.as_of):
            return False
        row, score = stored.row(job.customer_id), scores.score(job.customer_id)
        if row is None or score is None:
            job.future.set_exception(_missing(stored, job.customer_id))
            return True
        try:
            self._answer(champion, [(job, row, PATH_FEATURES)], [score])
        except Exception as e:  # an answer, as a worker's batch gets
            log.exception("answering from the stored scores failed")
            if not job.future.done():
                job.future.set_exception(
                    ScoreError(500, f"scoring failed: {type(e).__name__}: {e}")
                )
        return True

    def _process(self, index: int, batch: list[Job]) -> None:
        state = self.state
        features, champion = state.features, state.champion
        if features is None or champion is None:
            missing = "the warehouse copy" if features is None else "a champion"
            reason = self.errors.get("warehouse" if features is None else "champion", "")
            for job in batch:
                job.future.set_exception(
                    ScoreError(503, f"not ready: no {missing} yet. {reason}".strip())
                )
            return
        snapshot, engine, stored = features.snapshot, features.engines[index], features.stored
        rows: list[tuple[Job, dict[str, Any], str]] = []
        lookups: list[Job] = []
        to_compute: dict[dt.date, list[tuple[Job, History, str]]] = defaultdict(list)
        for job in batch:
            as_of = job.as_of or snapshot.as_of
            if as_of is None:
                job.future.set_exception(
                    ScoreError(
                        422 if job.history is not None else 503,
                        "marts.customer_features is empty, so there is no default as_of: "
                        "give as_of",
                    )
                )
            elif job.history is not None:
                to_compute[as_of].append((job, job.history, PATH_REQUEST_HISTORY))
            elif as_of == snapshot.as_of:
                lookups.append(job)
            else:
                history = snapshot.history(job.customer_id)
                if history is None:
                    job.future.set_exception(_unknown(job.customer_id))
                else:
                    to_compute[as_of].append((job, history, PATH_WAREHOUSE_HISTORY))
        for job in lookups:
            found = stored.row(job.customer_id)
            if found is None:
                job.future.set_exception(_missing(stored, job.customer_id))
            else:
                rows.append((job, found, PATH_FEATURES))
        for as_of, group in to_compute.items():
            for (job, _, path), row in zip(group, _compute(engine, group, as_of), strict=True):
                if isinstance(row, ScoreError):
                    job.future.set_exception(row)
                elif row is None:
                    job.future.set_exception(
                        _no_purchase(job.customer_id, as_of, warehouse=path != PATH_REQUEST_HISTORY)
                    )
                else:
                    rows.append((job, row, path))
        if rows:
            self._score(champion, rows)

    def _score(self, champion: Champion, rows: list[tuple[Job, dict[str, Any], str]]) -> None:
        assert self.compiled is not None
        frame = feature_frame([row for _, row, _ in rows], self.compiled.column_names)
        scores = np.asarray(champion.predict(frame), dtype=np.float64).ravel()
        if len(scores) != len(rows) or not np.all(np.isfinite(scores)):
            raise RuntimeError(f"champion {champion.ref.label()} returned invalid scores")
        self._answer(champion, rows, scores.tolist())

    def _answer(
        self,
        champion: Champion,
        rows: Sequence[tuple[Job, dict[str, Any], str]],
        scores: Sequence[float],
    ) -> None:
        """Log the predictions, then resolve each job with its row's score: an answer the
        client holds is already in the log's queue (a flush right after the response
        writes it), never appended after the response went out."""
        answers, predictions = [], []
        for (job, row, path), score in zip(rows, scores, strict=True):
            as_of = _date(row["as_of"])
            digest = features_hash(row)
            answers.append(
                Scored(
                    customer_id=job.customer_id,
                    as_of=as_of,
                    score=float(score),
                    model=champion.summary,
                    features_hash=digest,
                    features=jsonable_row(row),
                    path=path,
                )
            )
            if job.logged:
                predictions.append(
                    Prediction(
                        customer_id=job.customer_id,
                        as_of=as_of,
                        features_hash=digest,
                        score=float(score),
                        model_name=champion.ref.name,
                        model_version=champion.ref.version,
                        path=path,
                        requested_at=job.requested_at.astimezone(dt.UTC).replace(tzinfo=None),
                    )
                )
        self.predictions.append(predictions)
        for (job, _, _), answer in zip(rows, answers, strict=True):
            job.future.set_result(answer)


def _compute(
    engine: FeatureEngine, group: Sequence[tuple[Job, History, str]], as_of: dt.date
) -> list[dict[str, Any] | ScoreError | None]:
    """The group's feature rows; when the batch fails, each history alone, so that one
    history the SQL cannot take fails only its own request."""
    histories = [history for _, history, _ in group]
    try:
        return list(engine.compute(histories, as_of))
    except Exception as e:
        if len(histories) == 1:
            return [ScoreError(422, f"the features of this history cannot be computed: {e}")]
    out: list[dict[str, Any] | ScoreError | None] = []
    for item in group:
        out.extend(_compute(engine, [item], as_of))
    return out


def _missing(stored: StoredFeatures, customer_id: int) -> ScoreError:
    """Why a customer has no stored row: unknown, or no purchase before its as_of."""
    if customer_id in stored.known:
        return _no_purchase(customer_id, stored.as_of, warehouse=True)
    return _unknown(customer_id)


def _unknown(customer_id: int) -> ScoreError:
    return ScoreError(404, f"customer {customer_id} is not in the warehouse (raw.users)")


def _no_purchase(customer_id: int, as_of: dt.date | None, *, warehouse: bool) -> ScoreError:
    where = f"customer {customer_id} has" if warehouse else "the history has"
    return ScoreError(
        404 if warehouse else 422,
        f"{where} no purchase (an order with a non-cancelled item) before {as_of}: nextbuy "
        "scores customers with at least one, as marts.customer_features holds them",
    )


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def jsonable_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A features row as JSON values (timestamps as ISO text, NaN as null)."""
    return {str(k): _plain(v) for k, v in row.items()}


def features_hash(row: Mapping[str, Any]) -> str:
    """sha256 of the row's columns and values (floats to ``HASH_DIGITS`` digits): what the
    model saw, for the predictions log to tell identical inputs apart from changed ones."""
    canonical = []
    for name, value in row.items():
        plain = _plain(value)
        if isinstance(plain, float):
            plain = float(f"{plain:.{HASH_DIGITS}g}")
        canonical.append([str(name), plain])
    text = json.dumps(canonical, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()
