"""`nextbuy demo --thelook` on a sample of an export made by Google's own thelook generator
(tests/fixtures/thelook_google_sample, cut by tests/fixtures/cut_thelook_google.py).

thelook draws every item's brand at random, so beyond gender (which picks the department)
nothing predicts the next order's brand: the honest outcome is that no model beats the
gender baseline significantly, and the gate must say so rather than promote noise.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from orchestration.cli import main
from tests.conftest import FIXTURES

SAMPLE = FIXTURES / "thelook_google_sample"


def test_demo_on_thelook_finds_nothing_beyond_the_gender_baseline() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["demo", "--thelook", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["oracle_auc"] is None  # no simulator, no truth table
    assert report["promoted"] is False
    # The gender rule is one of the contenders the candidate failed to beat significantly.
    blocking = report["reason"].split("no model has passed")[0]
    assert "rate_by_gender" in blocking and "interval does not exclude zero" in blocking
    # Nothing has ever passed, so the best rule is the champion that scores customers.
    assert report["champion_kind"] == "baseline"
    assert abs(report["auc"] - report["best_baseline_auc"]) < 0.05
    assert "customers in ml.customer_scores" in result.output
    assert "nextbuy ui" in result.output

    # A baseline champion with nothing before it: rollback refuses and says why.
    rollback = runner.invoke(main, ["rollback"])
    assert rollback.exit_code == 1
    assert "no earlier champion" in rollback.output
