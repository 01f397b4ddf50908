"""The id path's answers, kept ready: every row of marts.customer_features of the warehouse
copy, by customer id, and a batch champion's score of each, in memory.

An id request for the copy's as-of date (`{"customer_id": 123}`) asks for a row the batch
has already computed, scored by the champion. Both change only when the warehouse copy or
the champion does, so the service builds this index whenever one of them changes (in the
thread that loads it, before the new state is swapped in) and answers such a request from
it in the caller's thread: a dict lookup, no DuckDB query, no pandas frame, no model call
and no hand-over to a worker thread. Measured on the benchmark machine (2,000-customer
shop, CatBoost champion), the per-request way cost about 1.2 ms for the row's query,
0.7 ms more for raw.users when there was no row, 0.6 ms for a one-row frame and 2 to 7 ms
for CatBoost on it, nearly all of it holding the GIL: the two workers topped out near 380
requests a second.

The scores are computed as ml.customer_scores computes them: the champion called once on
every row, ordered by customer id (orchestration/defs/scoring/assets.py). A fitted scorer
scores each row on its own, so a score equals the one a request alone would get;
tests/serving/test_stored.py checks both for every customer of its shop. An online
champion changes with each /learn, so its scores are not kept: its id requests still go
to the workers, which read the rows from here.

Memory: the rows as tuples, about 0.7 KB a customer (some 35 MB at the default 50,000),
the raw users' ids (to tell an unknown customer from one without a purchase) and a float
per scored customer. Scoring every row takes a moment at each change (20 ms for 1,454
customers with CatBoost), spent before the swap, while the old state still serves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from serving.champion import Champion
from serving.snapshot import WarehouseSnapshot


@dataclass(frozen=True)
class StoredFeatures:
    """customer_features' rows of one warehouse copy, and raw.users' ids."""

    as_of: dt.date | None
    names: tuple[str, ...]
    # Ordered by customer id, as the batch scores them.
    rows: tuple[tuple[Any, ...], ...]
    positions: Mapping[int, int]
    known: frozenset[int]

    @classmethod
    def of(cls, snapshot: WarehouseSnapshot) -> StoredFeatures:
        names, rows = snapshot.feature_rows()
        key = names.index("customer_id")
        return cls(
            as_of=snapshot.as_of,
            names=tuple(names),
            rows=tuple(rows),
            positions={int(row[key]): position for position, row in enumerate(rows)},
            known=frozenset(snapshot.customer_ids()),
        )

    def __len__(self) -> int:
        return len(self.rows)

    def row(self, customer_id: int) -> dict[str, Any] | None:
        """The customer's row (None: no row, unknown or without a purchase)."""
        position = self.positions.get(customer_id)
        return None if position is None else dict(zip(self.names, self.rows[position], strict=True))


@dataclass(frozen=True)
class StoredScores:
    """One champion's score of every stored row."""

    features: StoredFeatures
    champion: Champion
    scores: Sequence[float]

    @classmethod
    def of(
        cls, features: StoredFeatures, champion: Champion, columns: Sequence[str]
    ) -> StoredScores | None:
        """``champion``'s scores of the rows (``columns``: the frame's, as the workers
        build it); None for an online champion, whose scores move as it learns."""
        if champion.learner is not None:
            return None
        scores: list[float] = []
        if features.rows:
            frame = feature_frame(
                [dict(zip(features.names, row, strict=True)) for row in features.rows], columns
            )
            computed = np.asarray(champion.predict(frame), dtype=np.float64).ravel()
            if len(computed) != len(features.rows) or not np.all(np.isfinite(computed)):
                raise RuntimeError(f"champion {champion.ref.label()} returned invalid scores")
            scores = computed.tolist()
        return cls(features=features, champion=champion, scores=scores)

    def score(self, customer_id: int) -> float | None:
        position = self.features.positions.get(customer_id)
        return None if position is None else self.scores[position]


def feature_frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """customer_features rows as the frame a scorer takes (one construction for every
    path, so that a row scores the same whichever way it came)."""
    return pd.DataFrame(list(rows), columns=list(columns))
