from __future__ import annotations

import json

import numpy as np
import pytest

from ml.gate import decide

SETTINGS = {"metric": "roc_auc", "margin": 0.005, "n_boot": 300, "confidence_level": 0.95}


def _data(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(2.0 * signal - 1.0)))).astype(float)
    return y, signal


def test_promotes_a_clearly_better_candidate() -> None:
    y, signal = _data()
    rng = np.random.default_rng(1)
    candidate = signal + rng.normal(scale=0.3, size=y.size)
    weak = signal + rng.normal(scale=3.0, size=y.size)
    constant = np.full(y.size, y.mean())
    decision = decide(y, candidate, {"weak": weak, "overall_rate": constant}, seed=7, **SETTINGS)
    assert decision.promote, decision.reason
    assert decision.reason.startswith("promoted")
    assert all(c.beaten and c.lower > 0 for c in decision.comparisons)
    # The constant scorer ranks nothing: AUC one half.
    overall = next(c for c in decision.comparisons if c.contender == "overall_rate")
    assert overall.contender_value == pytest.approx(0.5)


def test_refuses_a_worse_candidate_and_names_the_contender() -> None:
    y, signal = _data()
    rng = np.random.default_rng(2)
    worse = signal + rng.normal(scale=3.0, size=y.size)
    decision = decide(y, worse, {"rate_by_gender": signal}, seed=7, **SETTINGS)
    assert not decision.promote
    assert "rate_by_gender" in decision.reason
    (comparison,) = decision.comparisons
    assert comparison.improvement < 0 and comparison.upper < 0
    assert comparison.verdict == "worse"
    assert "significantly worse" in comparison.why_not()
    assert decision.reason.startswith("not promoted: worse than rate_by_gender (roc_auc -0.")


def test_the_sentence_of_the_report_that_was_wrong() -> None:
    """The report once said "interval does not exclude zero" for [-0.0357, -0.0016]."""
    from ml.gate import Comparison, gate_sentence

    stays = Comparison(
        "champion", "roc_auc", 0.5773, 0.5960, -0.0187, -0.0357, -0.0016, 0.95, 0.005
    )
    rule = Comparison(
        "rate_by_gender", "roc_auc", 0.5773, 0.5703, 0.007, -0.012, 0.026, 0.95, 0.005
    )
    sentence = gate_sentence([rule, stays])
    assert sentence == (
        "not promoted: worse than champion (roc_auc -0.0187, 95% CI -0.0357 to -0.0016); "
        "1 other contender also not beaten"
    )
    assert len(sentence) < 160 and "exclude" not in sentence


def test_an_equal_candidate_is_not_significant() -> None:
    """A tie with the champion is no reason to promote: the interval contains zero."""
    y, signal = _data()
    decision = decide(y, signal, {"champion": signal.copy()}, seed=7, **SETTINGS)
    assert not decision.promote
    (comparison,) = decision.comparisons
    assert comparison.improvement == 0
    assert comparison.verdict == "no better"
    assert decision.reason == (
        "not promoted: no better than champion (roc_auc +0.0000, 95% CI +0.0000 to +0.0000)"
    )


def test_margin_blocks_a_small_but_significant_gain() -> None:
    y, signal = _data(n=20_000)
    rng = np.random.default_rng(3)
    candidate = signal + rng.normal(scale=0.2, size=y.size)
    contender = signal + rng.normal(scale=0.45, size=y.size)
    lenient = decide(y, candidate, {"c": contender}, seed=7, **{**SETTINGS, "margin": 0.0})
    assert lenient.promote, lenient.reason
    gain = lenient.comparisons[0].improvement
    strict = decide(y, candidate, {"c": contender}, seed=7, **{**SETTINGS, "margin": gain + 0.01})
    assert not strict.promote
    assert strict.comparisons[0].significant and not strict.comparisons[0].clears_margin
    assert strict.comparisons[0].verdict == "not enough better"
    assert strict.reason.startswith(
        f"not promoted: better than c by less than the margin {gain + 0.01:g} (roc_auc +0."
    )


def test_one_unbeaten_contender_blocks_promotion() -> None:
    y, signal = _data()
    rng = np.random.default_rng(4)
    candidate = signal + rng.normal(scale=0.5, size=y.size)
    contenders = {"noise": rng.normal(size=y.size), "oracle_like": signal}
    decision = decide(y, candidate, contenders, seed=7, **SETTINGS)
    assert not decision.promote
    assert "oracle_like" in decision.reason and "noise" not in decision.reason


def test_lower_is_better_metrics_are_oriented() -> None:
    y, signal = _data()
    good = 1 / (1 + np.exp(-(2.0 * signal - 1.0)))
    bad = np.clip(good + np.random.default_rng(5).normal(scale=0.3, size=y.size), 0.01, 0.99)
    decision = decide(y, good, {"bad": bad}, seed=7, **{**SETTINGS, "metric": "log_loss"})
    assert decision.promote, decision.reason
    assert decision.comparisons[0].improvement > 0


def test_same_seed_same_decision_and_serialisable() -> None:
    y, signal = _data()
    noisy = signal + np.random.default_rng(6).normal(scale=1.0, size=y.size)
    first = decide(y, noisy, {"signal": signal}, seed=11, **SETTINGS)
    second = decide(y, noisy, {"signal": signal}, seed=11, **SETTINGS)
    assert first == second
    record = json.loads(json.dumps(first.as_dict()))
    assert record["promote"] is False and record["comparisons"][0]["contender"] == "signal"


def test_needs_a_contender() -> None:
    y, signal = _data(n=100)
    with pytest.raises(ValueError, match="at least one contender"):
        decide(y, signal, {}, seed=7, **SETTINGS)


def test_too_few_test_rows_say_so_instead_of_no_better() -> None:
    """On 300 rows a real but small gain cannot be told from noise: the gate says the data
    cannot decide, with the difference it could have detected; on 40,000 rows of the same
    kind it can."""
    few_y, few = _data(n=300, seed=5)
    rng = np.random.default_rng(1)
    few_contender = few + rng.normal(scale=0.3, size=few.size)
    small = decide(few_y, few, {"champion": few_contender}, seed=7, **SETTINGS)
    (comparison,) = small.comparisons
    assert not small.promote
    assert comparison.verdict == "undecided"
    assert comparison.rows == 300
    assert comparison.detectable_difference > SETTINGS["margin"]
    assert small.reason.startswith("not promoted: not enough test data to decide against champion")
    assert (
        f"detect only differences of {comparison.detectable_difference:.4f} or more" in small.reason
    )
    many_y, many = _data(n=40_000, seed=5)
    many_contender = many + rng.normal(scale=0.3, size=many.size)
    large = decide(many_y, many, {"champion": many_contender}, seed=7, **SETTINGS)
    assert large.comparisons[0].verdict == "better", large.reason


def test_a_contender_compared_on_its_own_rows_and_by_customer() -> None:
    """The champion is compared only on rows it was not trained on (``rows``); resampling
    customers (``groups``) widens the interval when customers repeat."""
    y, signal = _data(n=4000, seed=2)
    rng = np.random.default_rng(12)
    contender = signal + rng.normal(scale=1.0, size=y.size)
    newest = np.arange(y.size) >= 3000
    decision = decide(
        y,
        signal,
        {"champion": contender, "rule": contender},
        rows={"champion": newest},
        seed=7,
        **SETTINGS,
    )
    champion, rule = decision.comparisons
    assert (champion.rows, rule.rows) == (1000, 4000)
    assert champion.candidate_value == pytest.approx(
        decide(y[newest], signal[newest], {"c": contender[newest]}, seed=7, **SETTINGS)
        .comparisons[0]
        .candidate_value
    )
    # Each of 500 customers seen eight times: 4,000 rows, but 500 customers' worth.
    y8, signal8, contender8 = (np.repeat(v[:500], 8) for v in (y, signal, contender))
    customers = np.repeat(np.arange(500), 8)
    by_row = decide(y8, signal8, {"rule": contender8}, seed=7, **SETTINGS)
    grouped = decide(y8, signal8, {"rule": contender8}, groups=customers, seed=7, **SETTINGS)
    assert (
        grouped.comparisons[0].detectable_difference
        > 2 * by_row.comparisons[0].detectable_difference
    )
    with pytest.raises(ValueError, match="no test rows to compare with champion"):
        decide(
            y,
            signal,
            {"champion": contender},
            rows={"champion": np.zeros(y.size)},
            seed=7,
            **SETTINGS,
        )
