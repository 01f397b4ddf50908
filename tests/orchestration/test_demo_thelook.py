"""`nextbuy demo --thelook` on a sample of an export made by Google's own thelook generator
(tests/fixtures/thelook_google_sample, cut by tests/fixtures/cut_thelook_google.py).

thelook draws every item's brand at random, so beyond gender (which picks the department)
nothing predicts the next order's brand: the honest outcome is that no model beats the
gender baseline significantly, and the gate must say so rather than promote noise.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from orchestration.cli import main
from tests.conftest import FIXTURES
from thelook.warehouse import connect

SAMPLE = FIXTURES / "thelook_google_sample"
GATE_SENTENCE = (
    r"not promoted: ((worse|no better) than|not enough test data to decide against) "
    r"rate_\w+ \(roc_auc [+-]\d\.\d{4}, 95% CI [+-]\d\.\d{4} to [+-]\d\.\d{4}"
    r"(; [\d,]+ test rows detect only differences of \d\.\d{4} or more, the margin is [\d.]+)?"
    r"\)(; \d other contenders? also not beaten)?"
)


def test_demo_on_thelook_finds_nothing_beyond_the_gender_baseline(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["demo", "--thelook", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["oracle_auc"] is None  # no simulator, no truth table
    assert report["promoted"] is False
    # One short sentence: the contender that stopped the candidate, with the interval.
    blocking = report["reason"].split("; no model has passed")[0]
    assert re.fullmatch(GATE_SENTENCE, blocking), blocking
    # Nothing has ever passed, so the best rule is the champion that scores customers.
    assert report["champion_kind"] == "baseline"
    assert abs(report["auc"] - report["best_baseline_auc"]) < 0.05
    assert "customers in ml.customer_scores" in result.output
    assert "nextbuy ui" in result.output

    _the_audience_breaks_ties_by_brand_share_then_recency(runner, tmp_path)

    # A baseline champion with nothing before it: rollback refuses and says why.
    rollback = runner.invoke(main, ["rollback"])
    assert rollback.exit_code == 1
    assert "no earlier champion" in rollback.output


def _the_audience_breaks_ties_by_brand_share_then_recency(
    runner: CliRunner, tmp_path: Path
) -> None:
    """The gender rule gives every man one score: the cut falls inside that tie, and the
    audience says so and orders the tied customers by a meaningful key, not by id."""
    out = tmp_path / "export" / "audience.csv"
    shown = runner.invoke(main, ["audience", "--out", str(out)])
    assert shown.exit_code == 0, shown.output
    cut = re.search(
        r"(\d[\d,]*) customers share that score and (\d[\d,]*) of them are in", shown.output
    )
    assert cut, shown.output
    tied, admitted = (int(g.replace(",", "")) for g in cut.groups())
    assert tied > admitted > 0

    exported = pd.read_csv(out)
    assert list(exported.columns[:4]) == ["email", "first_name", "last_name", "customer_id"]
    assert exported["audience_rank"].tolist() == list(range(1, len(exported) + 1))
    assert exported["email"].str.contains("@").all()
    con = connect(Path(os.environ["NEXTBUY_HOME"]) / "warehouse.duckdb", read_only=True)
    try:
        audience = con.execute("select * from marts.campaign_audience order by audience_rank").df()
        scored = con.execute("select count(*) from ml.customer_scores").fetchone()
    finally:
        con.close()
    assert exported["customer_id"].tolist() == audience["customer_id"].tolist()
    assert scored is not None and len(audience) == math.ceil(scored[0] * 0.10)
    # Best first: score, then target-brand share, then recency; the id only last.
    key = ["score", "prior_target_brand_share", "days_since_last_order", "customer_id"]
    expected = audience.sort_values(key, ascending=[False, False, True, True], na_position="last")
    assert audience["customer_id"].tolist() == expected["customer_id"].tolist()
    at_cut = audience[audience["score"] == audience["score"].min()]
    assert len(at_cut) == admitted
    assert not at_cut["customer_id"].is_monotonic_increasing  # not the lowest ids

    other_day = runner.invoke(main, ["audience", "--as-of", "2001-01-01"])
    assert other_day.exit_code == 1
    assert (
        "holds the audience as of" in other_day.output
        and "no scores of 2001-01-01" in other_day.output
    )
