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
from typing import Any

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


def audience_dates(con: Any) -> list[str]:
    """The as_of date(s) marts.campaign_audience holds (one after a normal build)."""
    rows = con.execute(f"select distinct as_of from {AUDIENCE_TABLE} order by 1").fetchall()
    return [_iso(r[0]) for r in rows]


def audience_cut(con: Any, as_of: str | None = None) -> AudienceCut:
    """The cut of the audience of ``as_of`` (default: the date the table holds)."""
    date = _resolve(con, as_of)
    customers, cut = con.execute(
        f"select count(*), min(score) from {AUDIENCE_TABLE} where as_of = ?", [date]
    ).fetchone()
    # The audience holds the score as dbt typed it (FLOAT), ml.customer_scores as written
    # (DOUBLE): compare at the audience's precision.
    scored, tied = con.execute(
        f"select count(*), count(*) filter (where cast(score as float) = cast(? as float)) "
        f"from {SCORES_TABLE} where as_of = ?",
        [cut, date],
    ).fetchone()
    admitted = con.execute(
        f"select count(*) from {AUDIENCE_TABLE} where as_of = ? and score = ?", [date, cut]
    ).fetchone()[0]
    return AudienceCut(
        as_of=date,
        customers=int(customers),
        scored_customers=int(scored),
        cut_score=None if cut is None else float(cut),
        tied_at_cut=int(tied),
        admitted_at_cut=int(admitted),
    )


def export_audience(con: Any, out: Path, as_of: str | None = None) -> int:
    """Write the audience of ``as_of`` as CSV (EXPORT_COLUMNS, best first); the number of
    rows written. Written to a temporary file first, so a failed export never leaves half
    a file where the e-mail tool picks it up."""
    date = _resolve(con, as_of)
    columns = ", ".join(EXPORT_COLUMNS)
    rows = con.execute(
        f"select {columns} from {AUDIENCE_TABLE} where as_of = ? order by audience_rank",
        [date],
    ).fetchall()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    with open(partial, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(EXPORT_COLUMNS)
        writer.writerows(tuple(_cell(v) for v in row) for row in rows)
    partial.replace(out)
    return len(rows)


def _resolve(con: Any, as_of: str | None) -> str:
    try:
        dates = audience_dates(con)
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
    scored = [
        _iso(r[0])
        for r in con.execute(f"select distinct as_of from {SCORES_TABLE} order by 1").fetchall()
    ]
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
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.6f}"
    return "" if value is None else value
