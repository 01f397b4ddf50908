from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from ml.split import rolling_origin_splits, time_gapped_split


def daily_examples(first: str, last: str, tz: str | None = None) -> pd.DataFrame:
    """One example per day at 15:00, labels alternating by day."""
    days = pd.date_range(first, last, freq="D", tz=tz) + pd.Timedelta(hours=15)
    return pd.DataFrame({"as_of": days, "label": [i % 2 for i in range(len(days))]})


def test_windows_are_exact_whole_days() -> None:
    examples = daily_examples("2026-01-01", "2026-03-31")
    split = time_gapped_split(examples, test_days=10, validation_days=10, gap_days=2)

    w = split.windows
    assert w.test_end == pd.Timestamp("2026-04-01")
    assert w.test_start == pd.Timestamp("2026-03-22")
    assert w.validation_end == pd.Timestamp("2026-03-20")
    assert w.validation_start == pd.Timestamp("2026-03-10")
    assert w.train_end == pd.Timestamp("2026-03-08")
    assert w.train_start == pd.Timestamp("2026-01-01")
    assert len(split.test) == 10
    assert len(split.validation) == 10
    assert len(split.train) == 31 + 28 + 7
    assert split.dropped_in_gaps == 4
    assert split.test["as_of"].min() == pd.Timestamp("2026-03-22 15:00")
    assert split.validation["as_of"].max() == pd.Timestamp("2026-03-19 15:00")
    assert split.train["as_of"].max() == pd.Timestamp("2026-03-07 15:00")
    assert w.as_dict()["test_start"] == "2026-03-22T00:00:00"


def test_keeps_original_index_and_rows() -> None:
    examples = daily_examples("2026-01-01", "2026-02-28").sample(frac=1.0, random_state=3)
    split = time_gapped_split(examples, test_days=7, validation_days=7, gap_days=0)
    together = pd.concat([split.train, split.validation, split.test])
    assert sorted(together.index) == sorted(examples.index)
    assert split.dropped_in_gaps == 0


def test_timezone_aware_times() -> None:
    examples = daily_examples("2026-01-01", "2026-03-31", tz="UTC")
    split = time_gapped_split(examples, test_days=10, validation_days=10, gap_days=2)
    assert split.windows.test_start == pd.Timestamp("2026-03-22", tz="UTC")
    assert len(split.test) == 10


def test_empty_window_is_named() -> None:
    examples = daily_examples("2026-01-01", "2026-03-31")
    in_validation = (examples["as_of"] >= "2026-03-10") & (examples["as_of"] < "2026-03-20")
    with pytest.raises(ValueError, match=r"validation window \[2026-03-10, 2026-03-20\) holds no"):
        time_gapped_split(examples[~in_validation], test_days=10, validation_days=10, gap_days=2)


def test_single_class_window_is_named() -> None:
    examples = daily_examples("2026-01-01", "2026-03-31")
    examples.loc[examples["as_of"] >= "2026-03-22", "label"] = 0
    with pytest.raises(ValueError, match=r"test window .* holds only label 0"):
        time_gapped_split(examples, test_days=10, validation_days=10, gap_days=2)


def test_history_shorter_than_windows_fails_on_train() -> None:
    examples = daily_examples("2026-03-09", "2026-03-31")
    with pytest.raises(ValueError, match=r"train window .* holds no examples"):
        time_gapped_split(examples, test_days=10, validation_days=10, gap_days=2)


@pytest.mark.parametrize(
    ("test_days", "validation_days", "gap_days"), [(0, 10, 2), (10, 0, 2), (10, 10, -1)]
)
def test_rejects_bad_lengths(test_days: int, validation_days: int, gap_days: int) -> None:
    with pytest.raises(ValueError, match="split"):
        time_gapped_split(
            daily_examples("2026-01-01", "2026-03-31"),
            test_days=test_days,
            validation_days=validation_days,
            gap_days=gap_days,
        )


def test_parameters_give_a_valid_split(parameters: dict[str, object]) -> None:
    section = parameters["split"]
    assert isinstance(section, dict)
    examples = daily_examples("2025-01-01", "2026-10-31")
    windows = {k: v for k, v in section.items() if k != "folds"}
    split = time_gapped_split(examples, **windows)
    assert len(split.test) == section["test_days"]
    folds = rolling_origin_splits(examples, folds=section["folds"], **windows)
    assert len(folds) == section["folds"] and folds[-1].windows == split.windows


def test_rolling_origin_folds_tile_the_last_days_and_never_see_their_test() -> None:
    days = pd.date_range("2025-01-01", "2025-12-31 18:00", freq="6h")
    examples = pd.DataFrame({"as_of": days, "label": np.arange(days.size) % 3 == 0})
    splits = rolling_origin_splits(examples, folds=4, test_days=28, validation_days=14, gap_days=7)
    assert [str(s.windows.test_end.date()) for s in splits] == [
        "2025-10-09", "2025-11-06", "2025-12-04", "2026-01-01",
    ]  # fmt: skip
    for earlier, later in itertools.pairwise(splits):
        assert earlier.windows.test_end == later.windows.test_start
    for s in splits:
        assert s.train["as_of"].max() < s.windows.validation_start
        assert s.validation["as_of"].max() < s.windows.test_start
        assert s.test["as_of"].between(s.windows.test_start, s.windows.test_end).all()
        assert len(s.test) == 28 * 4
    pooled = pd.concat(s.test for s in splits)
    assert pooled.index.is_unique and len(pooled) == 4 * 28 * 4
    assert (
        splits[-1].windows
        == time_gapped_split(examples, test_days=28, validation_days=14, gap_days=7).windows
    )


def test_a_fold_without_history_is_named() -> None:
    examples = pd.DataFrame(
        {"as_of": pd.date_range("2026-01-01", periods=60), "label": [0, 1] * 30}
    )
    with pytest.raises(ValueError, match=r"train window .* holds no examples.*fold 1 of 3"):
        rolling_origin_splits(examples, folds=3, test_days=14, validation_days=14, gap_days=7)
