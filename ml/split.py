"""Time-gapped split of training examples into train, validation and test windows.

A random split lets a model see a customer's later orders while being tested on earlier
ones, and hides drift: the champion is used on tomorrow's customers, so it is judged on
the most recent days it has not seen. Gaps between the windows are dropped so that a
customer's consecutive orders seldom sit on both sides of a boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class SplitWindows:
    """Window boundaries; every window is half-open, [start, end), on whole days.

    >>> import pandas as pd
    >>> from ml.split import SplitWindows
    >>> days = (pd.Timestamp(f"2026-01-{day:02d}") for day in (1, 7, 8, 10, 11, 13))
    >>> SplitWindows(*days).as_dict()["test_start"]
    '2026-01-11T00:00:00'
    """

    train_start: pd.Timestamp
    train_end: pd.Timestamp
    validation_start: pd.Timestamp
    validation_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    def as_dict(self) -> dict[str, str]:
        """ISO strings, ready to log as run metadata or MLflow params."""
        return {name: value.isoformat() for name, value in self.__dict__.items()}


@dataclass(frozen=True)
class TimeSplit:
    """The three windows' examples (original index kept) and their boundaries.

    >>> import pandas as pd
    >>> from ml.split import time_gapped_split
    >>> examples = pd.DataFrame({"as_of": pd.date_range("2026-01-01", periods=12), "label": [0, 1] * 6})
    >>> split = time_gapped_split(examples, test_days=2, validation_days=2, gap_days=1)
    >>> split.validation.index.tolist(), split.test.index.tolist(), split.dropped_in_gaps
    ([7, 8], [10, 11], 2)
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    windows: SplitWindows
    dropped_in_gaps: int


def time_gapped_split(
    examples: pd.DataFrame,
    *,
    test_days: int,
    validation_days: int,
    gap_days: int,
    time_column: str = "as_of",
    label_column: str = "label",
    end: pd.Timestamp | None = None,
) -> TimeSplit:
    """Split examples by time into train / gap / validation / gap / test.

    The windows end at midnight after the day of the last ``time_column`` value, so the
    test window is exactly the last ``test_days`` calendar days of the data. Each of the
    three windows must hold both labels: a window without positives (or negatives) cannot
    measure AUC nor stop training early, and failing loudly beats a silent NaN.
    With ``end`` (midnight) the test window ends there instead, and later examples are in
    no window (``rolling_origin_splits`` moves the origin back this way).

    >>> import pandas as pd
    >>> from ml.split import time_gapped_split
    >>> examples = pd.DataFrame({
    ...     "as_of": pd.date_range("2026-01-01 09:30", periods=12, freq="D"),
    ...     "label": [0, 1] * 6,
    ... })
    >>> split = time_gapped_split(examples, test_days=2, validation_days=2, gap_days=1)
    >>> len(split.train), len(split.validation), len(split.test)
    (6, 2, 2)
    >>> str(split.windows.train_end), str(split.windows.test_end)
    ('2026-01-07 00:00:00', '2026-01-13 00:00:00')
    """
    if test_days <= 0 or validation_days <= 0:
        raise ValueError(
            f"split: test_days ({test_days}) and validation_days ({validation_days}) must be positive"
        )
    if gap_days < 0:
        raise ValueError(f"split: gap_days ({gap_days}) must not be negative")
    if examples.empty:
        raise ValueError("split: there are no training examples to split")
    times = pd.to_datetime(examples[time_column])
    if times.isna().any():
        raise ValueError(f"split: {int(times.isna().sum())} examples have no {time_column}")

    test_end = times.max().floor("D") + _DAY if end is None else pd.Timestamp(end).floor("D")
    test_start = test_end - test_days * _DAY
    validation_end = test_start - gap_days * _DAY
    validation_start = validation_end - validation_days * _DAY
    train_end = validation_start - gap_days * _DAY
    train_start = min(times.min().floor("D"), train_end)
    windows = SplitWindows(
        train_start=train_start,
        train_end=train_end,
        validation_start=validation_start,
        validation_end=validation_end,
        test_start=test_start,
        test_end=test_end,
    )

    in_train = (times < train_end).to_numpy()
    in_validation = ((times >= validation_start) & (times < validation_end)).to_numpy()
    in_test = ((times >= test_start) & (times < test_end)).to_numpy()
    parts = {
        "train": (examples[in_train], train_start, train_end),
        "validation": (examples[in_validation], validation_start, validation_end),
        "test": (examples[in_test], test_start, test_end),
    }
    for name, (frame, start, end) in parts.items():
        _check_window(name, frame, start, end, label_column)

    return TimeSplit(
        train=parts["train"][0],
        validation=parts["validation"][0],
        test=parts["test"][0],
        windows=windows,
        dropped_in_gaps=int(
            (times < test_end).sum() - in_train.sum() - in_validation.sum() - in_test.sum()
        ),
    )


def rolling_origin_splits(
    examples: pd.DataFrame,
    *,
    folds: int,
    test_days: int,
    validation_days: int,
    gap_days: int,
    time_column: str = "as_of",
    label_column: str = "label",
    end: pd.Timestamp | None = None,
) -> list[TimeSplit]:
    """``folds`` time-gapped splits whose test windows tile the last ``folds`` x
    ``test_days`` days, oldest first: a rolling-origin backtest.

    The newest test window ends at midnight after the last ``time_column`` value, or at
    ``end`` (the run's as-of date) when that is earlier: an example dated after the date
    a run is for (a future-dated order in raw) is in no window and cannot move them.

    Each fold's train and validation windows lie before its own test window (with the
    gaps), so a model fitted on a fold never saw its test days; the newest fold is
    ``time_gapped_split`` itself. Pooling the folds' test rows measures a model K times
    on as many examples, and the folds side by side show how stable it is over time.

    >>> import pandas as pd
    >>> from ml.split import rolling_origin_splits
    >>> examples = pd.DataFrame({"as_of": pd.date_range("2026-01-01", periods=20), "label": [0, 1] * 10})
    >>> splits = rolling_origin_splits(examples, folds=3, test_days=2, validation_days=2, gap_days=1)
    >>> [(s.test.index.min(), s.test.index.max(), len(s.train)) for s in splits]
    [(14, 15, 10), (16, 17, 12), (18, 19, 14)]
    >>> late = pd.concat([examples, pd.DataFrame({"as_of": [pd.Timestamp("2999-01-01")], "label": [1]})])
    >>> bounded = rolling_origin_splits(
    ...     late, folds=3, test_days=2, validation_days=2, gap_days=1, end=pd.Timestamp("2026-01-21")
    ... )
    >>> [str(s.windows.test_end.date()) for s in bounded]
    ['2026-01-17', '2026-01-19', '2026-01-21']
    """
    if folds < 1:
        raise ValueError(f"split: folds ({folds}) must be at least 1")
    if examples.empty:
        raise ValueError("split: there are no training examples to split")
    times = pd.to_datetime(examples[time_column])
    last_end = times.max().floor("D") + _DAY
    if end is not None:
        last_end = min(last_end, pd.Timestamp(end).floor("D"))
    splits = []
    for fold in range(folds):
        end = last_end - (folds - 1 - fold) * test_days * _DAY
        try:
            splits.append(
                time_gapped_split(
                    examples,
                    test_days=test_days,
                    validation_days=validation_days,
                    gap_days=gap_days,
                    time_column=time_column,
                    label_column=label_column,
                    end=end,
                )
            )
        except ValueError as error:
            raise ValueError(
                f"{error} (backtest fold {fold + 1} of {folds}; fewer split.folds need "
                "less history)"
            ) from error
    return splits


def _check_window(
    name: str, frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, label_column: str
) -> None:
    span = f"[{start.date().isoformat()}, {end.date().isoformat()})"
    if frame.empty:
        raise ValueError(
            f"split: the {name} window {span} holds no examples; "
            "shorten split.test_days / validation_days / gap_days or add history"
        )
    labels = sorted(frame[label_column].unique().tolist())
    if len(labels) < 2:
        raise ValueError(
            f"split: the {name} window {span} holds only label {labels[0]} "
            f"({len(frame)} examples); it needs both classes"
        )
