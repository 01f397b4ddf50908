"""The campaign audience as marketing uses it: how it was cut, and the export for an e-mail
tool (`nextbuy audience`).

dbt's `campaign_audience` is the one definition of who is in (the top
`scoring.audience_top_percent` by score, ties ordered by target-brand share, then recency);
this module only reads it.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from orchestration.resources import Warehouse

AUDIENCE_TABLE = "marts.campaign_audience"
SCORES_TABLE = "ml.customer_scores"

# What an e-mail tool needs first (address, greeting), then what marketing may segment on.
EXPORT_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "customer_id",
    "country",
    "audience_rank",
    "score",
    "as_of",
    "model_name",
    "model_version",
)


class AudienceError(RuntimeError):
    """No audience to read, or not the one asked for; the message says what to run."""


@dataclass(frozen=True)
class AudienceCut:
    """Where the audience was cut, and how many customers shared the score at the cut.

    ``tied_at_cut`` counts every scored customer of that date whose score equals the
    lowest score admitted; ``admitted_at_cut`` how many of them are in. When they differ,
    the cut fell inside a group of equal scores and the tie-break (target-brand share,
    then recency) chose among them."""

    as_of: str
    customers: int
    scored_customers: int
    cut_score: float | None
    tied_at_cut: int
    admitted_at_cut: int

    @property
    def cut_inside_a_tie(self) -> bool:
        return self.tied_at_cut > self.admitted_at_cut

    def describe(self) -> str:
        if self.customers == 0:
            return f"no customer in the audience as of {self.as_of}"
        text = (
            f"{self.customers:,} of {self.scored_customers:,} scored customers as of "
            f"{self.as_of}, cut at score {self.cut_score:.4f}"
        )
        if self.cut_inside_a_tie:
            text += (
                f"; {self.tied_at_cut:,} customers share that score and {self.admitted_at_cut:,}"
                " of them are in, chosen by target-brand share, then recency"
            )
        return text

    def as_metadata(self) -> dict[str, Any]:
        return {**asdict(self), "cut_inside_a_tie": self.cut_inside_a_tie}


def audience_dates(warehouse: Warehouse) -> list[str]:
    """The as_of date(s) marts.campaign_audience holds (one after a normal build)."""
    return _distinct_dates(warehouse, AUDIENCE_TABLE)


def audience_cut(warehouse: Warehouse, as_of: str | None = None) -> AudienceCut:
    """The cut of the audience of ``as_of`` (default: the date the table holds)."""
    date = dt.date.fromisoformat(_resolve(warehouse, as_of))
    audience, scores = warehouse.relation(AUDIENCE_TABLE), warehouse.relation(SCORES_TABLE)
    first = warehouse.query(
        f"select count(*) as customers, min(score) as cut from {audience} where as_of = ?",
        [date],
    )
    first_dtype = first["cut"].dtype
    first = first.iloc[0]
    customers, cut = int(first["customers"]), _number(first["cut"])
    # The audience holds the score as dbt typed it (FLOAT locally), ml.customer_scores as
    # written (DOUBLE): compare at the audience's precision, which the cut carries.
    scored = warehouse.query(
        f"select count(*) as scored from {scores} where as_of = ?", [date]
    ).iloc[0]["scored"]
    tied = admitted = 0
    if cut is not None:
        # The scores near the cut, compared in the audience's precision (its column's
        # type: FLOAT on DuckDB, FLOAT64 on BigQuery), which the cut's dtype carries.
        near = warehouse.query(
            f"select score from {scores} where as_of = ? and score between ? and ?",
            [date, cut - abs(cut) * 1e-6, cut + abs(cut) * 1e-6],
        )["score"]
        tied = int((near.to_numpy().astype(first_dtype) == first["cut"]).sum())
        admitted = warehouse.query(
            f"select count(*) as admitted from {audience} where as_of = ? and score = ?",
            [date, cut],
        ).iloc[0]["admitted"]
    return AudienceCut(
        as_of=date.isoformat(),
        customers=customers,
        scored_customers=int(scored),
        cut_score=cut,
        tied_at_cut=int(tied),
        admitted_at_cut=int(admitted),
    )


def export_audience(warehouse: Warehouse, out: Path, as_of: str | None = None) -> int:
    """Write the audience of ``as_of`` as CSV (EXPORT_COLUMNS, best first); the number of
    rows written. Written to a temporary file first, so a failed export never leaves half
    a file where the e-mail tool picks it up."""
    date = dt.date.fromisoformat(_resolve(warehouse, as_of))
    columns = ", ".join(EXPORT_COLUMNS)
    rows = warehouse.query(
        f"select {columns} from {warehouse.relation(AUDIENCE_TABLE)} where as_of = ? "
        "order by audience_rank",
        [date],
    )
    rows["as_of"] = pd.to_datetime(rows["as_of"]).dt.date
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    with open(partial, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(EXPORT_COLUMNS)
        writer.writerows(
            tuple(_cell(v) for v in row) for row in rows.itertuples(index=False, name=None)
        )
    partial.replace(out)
    return len(rows)


def _distinct_dates(warehouse: Warehouse, table: str) -> list[str]:
    rows = warehouse.query(f"select distinct as_of from {warehouse.relation(table)} order by as_of")
    return [_iso(v) for v in rows["as_of"]]


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _resolve(warehouse: Warehouse, as_of: str | None) -> str:
    try:
        dates = audience_dates(warehouse)
    except Exception as e:
        raise AudienceError(
            f"{AUDIENCE_TABLE} cannot be read ({e}): run `nextbuy pipeline` (or `nextbuy "
            "tick`) first"
        ) from e
    if not dates:
        raise AudienceError(f"{AUDIENCE_TABLE} is empty: no scores yet; run `nextbuy pipeline`")
    if as_of is None:
        return dates[-1]
    if as_of in dates:
        return as_of
    scored = _distinct_dates(warehouse, SCORES_TABLE)
    hint = (
        f"scores of {as_of} exist: `nextbuy dbt build --select campaign_audience --vars "
        f"'{{as_of: \"{as_of}\"}}'` rebuilds the audience for that date"
        if as_of in scored
        else f"no scores of {as_of} either (scored dates: {_dates(scored)})"
    )
    raise AudienceError(
        f"{AUDIENCE_TABLE} holds the audience as of {_dates(dates)}, not {as_of}; {hint}"
    )


def _dates(dates: list[str]) -> str:
    if not dates:
        return "none"
    return ", ".join(dates) if len(dates) <= 5 else f"{dates[0]} .. {dates[-1]} ({len(dates)})"


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        value = value.date()
    return value.isoformat() if isinstance(value, dt.date) else str(value)[:10]


def _cell(value: Any) -> Any:
    if value is None or (np.isscalar(value) and pd.isna(value)):
        return ""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, float | np.floating):
        return f"{value:.6f}"
    return value.item() if isinstance(value, np.generic) else value
