"""Drift of one scored date's features and scores against a reference (the champion's
training data): Population Stability Index per column, a two-sample test, and the bins
whose shares moved most.

Kept whole: the JSON reference format, the binning that writes it and the comparison that
reads it change together, for three column kinds; split, each file would hold half a format.

Every column is cut into bins fixed once, on the reference, and stored as plain JSON
(``DriftMonitor.reference_dict``) beside the model, so a day is compared without the
training data at hand:

- numeric: bins between the reference's quantiles (tied quantiles merge; bins are
  right-closed, the end bins open, so values outside the reference's range land in
  them), NULL its own bin; test: Kolmogorov-Smirnov (``scipy.stats.ks_2samp``) against
  ``ks_sample_size`` evenly spaced quantiles of the reference, so its p-value is that of a
  reference of that size (conservative; with a day's thousands of rows any real shift is
  still significant);
- categorical: the ``top_categories`` most frequent categories, the rest pooled as
  ``(other)`` together with categories the reference never saw (new cities arrive every
  month without the distribution moving), NULL its own bin; test: chi-square on the two
  rows of counts, every seen category and the unseen ones as cells of their own
  (``scipy.stats.chi2_contingency``);
- sequence (``;``-joined tokens): shares of all tokens over the ``top_tokens`` most
  frequent reference tokens, every other token pooled as ``(other)``; no test, because
  one customer's tokens are not independent draws and a p-value would overstate.

PSI is sum over bins of (c - r) ln(c / r) on shares clipped below at ``epsilon``: the
Jeffreys divergence, computed as scipy's ``entropy(c, r) + entropy(r, c)`` (which
renormalises the clipped shares). A column fails when PSI >= ``fail_psi``, warns when
PSI >= ``warn_psi``; a sequence column without a single token today fails.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self, TypedDict

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats  # type: ignore[import-untyped]

FloatArray = npt.NDArray[np.float64]

NULL_BIN = "NULL"
OTHER_BIN = "(other)"
STATUSES = ("ok", "warn", "fail")
REFERENCE_FORMAT = 1
_MIN_EXPECTED_COUNT = 5.0

_REPORT_COLUMNS = ["column", "kind", "psi", "test", "statistic", "p_value", "status", "top_changes"]
_SHARE_COLUMNS = ["column", "bin", "reference_share", "current_share"]


class NumericReference(TypedDict):
    kind: Literal["numeric"]
    # Interior edges; bin i holds edges[i-1] < x <= edges[i].
    edges: list[float]
    counts: list[int]
    nulls: int
    # Evenly spaced reference quantiles: the reference side of the KS test.
    sample: list[float]


class CategoricalReference(TypedDict):
    kind: Literal["categorical"]
    # Every category seen, most frequent first; the PSI pools those past the top ones.
    categories: list[str]
    counts: list[int]
    nulls: int


class SequenceReference(TypedDict):
    kind: Literal["sequence"]
    tokens: list[str]
    counts: list[int]
    other: int


ColumnReference = NumericReference | CategoricalReference | SequenceReference


def population_stability_index(
    reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike, epsilon: float = 1e-4
) -> float:
    """PSI of two count (or share) vectors over the same bins; empty bins count as
    ``epsilon`` of a share.

    >>> from ml.drift import population_stability_index
    >>> round(population_stability_index([50, 50], [25, 75]), 4)  # -.25 ln .5 + .25 ln 1.5
    0.2747
    >>> population_stability_index([10, 20, 30], [1, 2, 3])
    0.0
    """
    reference = _clipped_shares(reference_counts, epsilon)
    current = _clipped_shares(current_counts, epsilon)
    if reference.shape != current.shape:
        raise ValueError(f"{reference.size} reference bins but {current.size} current bins")
    return float(stats.entropy(current, reference) + stats.entropy(reference, current))


def _clipped_shares(counts: npt.ArrayLike, epsilon: float) -> FloatArray:
    values = np.asarray(counts, dtype=np.float64).ravel()
    total = values.sum()
    if values.size == 0 or total <= 0 or (values < 0).any():
        raise ValueError("counts must be non-negative with a positive total")
    shares: FloatArray = np.maximum(values / total, epsilon)
    return shares


@dataclass(frozen=True)
class DriftReport:
    """What ``DriftMonitor.compare`` returns: one row per column, its bins, the status.

    >>> import pandas as pd
    >>> from ml.drift import DriftReport
    >>> row = {"column": "age", "kind": "numeric", "psi": 0.12, "test": "ks",
    ...        "statistic": 0.1, "p_value": 0.01, "status": "warn", "top_changes": ""}
    >>> report = DriftReport(pd.DataFrame([row]), pd.DataFrame(), warn_psi=0.1, fail_psi=0.25)
    >>> report.status, report.as_dict()["columns"][0]["status"]
    ('warn', 'warn')
    """

    # column, kind, psi, test ("ks", "chi2" or None), statistic, p_value, status, top_changes
    columns: pd.DataFrame
    # One row per (column, bin) with data on either side: reference_share, current_share.
    shares: pd.DataFrame
    warn_psi: float
    fail_psi: float

    @property
    def status(self) -> str:
        """The worst column status; "ok" without columns."""
        worst = max((STATUSES.index(s) for s in self.columns.get("status", [])), default=0)
        return STATUSES[worst]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON: overall status, thresholds and the column rows (NaN as None)."""
        rows = [
            {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
            for row in self.columns.to_dict("records")
        ]
        return {
            "status": self.status,
            "warn_psi": self.warn_psi,
            "fail_psi": self.fail_psi,
            "columns": rows,
        }


class DriftMonitor:
    """Reference bins and shares of the listed columns (``fit``), and a day's drift from
    them (``compare``). Fitted attribute: ``reference_`` (column -> its reference, plain
    JSON types), also restored by ``from_reference_dict``.

    >>> import pandas as pd
    >>> from ml.drift import DriftMonitor
    >>> reference = pd.DataFrame({
    ...     "score": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
    ...     "gender": ["F", "M", "F", "M", "F", "M", "F", None],
    ...     "brand_sequence": ["Levi's;Hanes", "Hanes", "Levi's", "Nike", "Hanes", "Nike",
    ...                        "Levi's;Nike", "Hanes"],
    ... })
    >>> monitor = DriftMonitor(["score"], ["gender"], ["brand_sequence"],
    ...                        warn_psi=0.1, fail_psi=0.25, bins=4).fit(reference)
    >>> monitor.compare(reference).columns[["column", "psi", "status"]]
               column  psi status
    0           score  0.0     ok
    1          gender  0.0     ok
    2  brand_sequence  0.0     ok
    >>> today = reference.assign(score=reference["score"] + 0.3, gender="X")
    >>> report = monitor.compare(today)
    >>> report.status, report.columns["status"].tolist()
    ('fail', ['fail', 'fail', 'ok'])
    >>> report.columns.loc[1, "top_changes"]
    '(other): 0.0% -> 100.0%; F: 50.0% -> 0.0%; M: 37.5% -> 0.0%'
    """

    def __init__(
        self,
        numeric: Sequence[str],
        categorical: Sequence[str],
        sequences: Sequence[str],
        *,
        warn_psi: float,
        fail_psi: float,
        bins: int = 10,
        top_tokens: int = 50,
        top_categories: int = 50,
        top_changes: int = 3,
        ks_sample_size: int = 1000,
        epsilon: float = 1e-4,
        separator: str = ";",
    ) -> None:
        self.numeric = numeric
        self.categorical = categorical
        self.sequences = sequences
        self.warn_psi = warn_psi
        self.fail_psi = fail_psi
        self.bins = bins
        self.top_tokens = top_tokens
        self.top_categories = top_categories
        self.top_changes = top_changes
        self.ks_sample_size = ks_sample_size
        self.epsilon = epsilon
        self.separator = separator

    def _check_parameters(self) -> None:
        names = [*self.numeric, *self.categorical, *self.sequences]
        if len(set(names)) != len(names):
            raise ValueError(f"a column is listed under more than one kind: {names}")
        if not 0 <= self.warn_psi <= self.fail_psi:
            raise ValueError(
                f"need 0 <= warn_psi <= fail_psi, got {self.warn_psi}, {self.fail_psi}"
            )
        minimums = {"bins": 2, "top_tokens": 1, "top_categories": 1, "ks_sample_size": 2}
        for name, minimum in minimums.items():
            if getattr(self, name) < minimum:
                raise ValueError(f"{name} must be at least {minimum}")
        if not 0 < self.epsilon < 1:
            raise ValueError("epsilon must be between 0 and 1")
        if not self.separator:
            raise ValueError("separator must not be empty")

    def fit(self, reference: pd.DataFrame) -> Self:
        """Bin and count the reference (the champion's training examples)."""
        self._check_parameters()
        if reference.empty:
            raise ValueError("the reference frame has no rows")
        _require_columns(reference, [*self.numeric, *self.categorical, *self.sequences])
        fitted: dict[str, ColumnReference] = {}
        for column in self.numeric:
            fitted[column] = _fit_numeric(reference[column], self.bins, self.ks_sample_size)
        for column in self.categorical:
            fitted[column] = _fit_categorical(reference[column])
        for column in self.sequences:
            tokens = _token_counts(reference[column], self.separator)
            fitted[column] = _fit_sequence(tokens, self.top_tokens)
        self.reference_ = fitted
        return self

    def compare(self, current: pd.DataFrame) -> DriftReport:
        """Drift of ``current`` (one scored date's rows) from the fitted reference."""
        if not hasattr(self, "reference_"):
            raise RuntimeError("DriftMonitor is not fitted: call fit or from_reference_dict")
        if current.empty:
            raise ValueError("the current frame has no rows")
        _require_columns(current, list(self.reference_))
        rows: list[dict[str, Any]] = []
        share_rows: list[dict[str, Any]] = []
        for column, reference in self.reference_.items():
            bins = _binned(reference, current[column], self.top_categories, self.separator)
            keep = (bins.reference + bins.current) > 0
            labels = [label for label, kept in zip(bins.labels, keep, strict=True) if kept]
            ref_counts, cur_counts = bins.reference[keep], bins.current[keep]
            has_current = cur_counts.sum() > 0
            psi = (
                population_stability_index(ref_counts, cur_counts, self.epsilon)
                if has_current
                else math.nan
            )
            ref_shares = ref_counts / ref_counts.sum()
            cur_shares = cur_counts / cur_counts.sum() if has_current else np.zeros(len(labels))
            share_rows += [
                {"column": column, "bin": label, "reference_share": r, "current_share": c}
                for label, r, c in zip(labels, ref_shares, cur_shares, strict=True)
            ]
            rows.append(
                {
                    "column": column,
                    "kind": reference["kind"],
                    "psi": psi,
                    "test": bins.test,
                    "statistic": bins.statistic,
                    "p_value": bins.p_value,
                    "status": self._status(psi),
                    "top_changes": _top_changes(labels, ref_shares, cur_shares, self.top_changes),
                }
            )
        return DriftReport(
            columns=pd.DataFrame(rows, columns=_REPORT_COLUMNS),
            shares=pd.DataFrame(share_rows, columns=_SHARE_COLUMNS),
            warn_psi=self.warn_psi,
            fail_psi=self.fail_psi,
        )

    def _status(self, psi: float) -> str:
        if math.isnan(psi) or psi >= self.fail_psi:
            return "fail"
        return "warn" if psi >= self.warn_psi else "ok"

    def reference_dict(self) -> dict[str, Any]:
        """The fitted reference and the settings that shaped it, as plain JSON types.

        The thresholds are left out: they are today's policy, passed again to
        ``from_reference_dict``.
        """
        if not hasattr(self, "reference_"):
            raise RuntimeError("DriftMonitor is not fitted: call fit first")
        return {
            "format": REFERENCE_FORMAT,
            "bins": self.bins,
            "top_tokens": self.top_tokens,
            "top_categories": self.top_categories,
            "top_changes": self.top_changes,
            "ks_sample_size": self.ks_sample_size,
            "epsilon": self.epsilon,
            "separator": self.separator,
            "columns": copy.deepcopy(self.reference_),
        }

    @classmethod
    def from_reference_dict(
        cls, reference: Mapping[str, Any], *, warn_psi: float, fail_psi: float
    ) -> Self:
        """A fitted monitor from ``reference_dict()`` (e.g. read back from JSON).

        >>> import json
        >>> import pandas as pd
        >>> from ml.drift import DriftMonitor
        >>> frame = pd.DataFrame({"age": [20.0, 30.0, 40.0, None]})
        >>> fitted = DriftMonitor(["age"], [], [], warn_psi=0.1, fail_psi=0.25).fit(frame)
        >>> stored = json.loads(json.dumps(fitted.reference_dict()))
        >>> restored = DriftMonitor.from_reference_dict(stored, warn_psi=0.1, fail_psi=0.25)
        >>> restored.reference_ == fitted.reference_
        True
        """
        if reference.get("format") != REFERENCE_FORMAT:
            raise ValueError(f"unknown drift reference format {reference.get('format')!r}")
        columns: dict[str, ColumnReference] = copy.deepcopy(dict(reference["columns"]))
        by_kind: dict[str, list[str]] = {"numeric": [], "categorical": [], "sequence": []}
        for column, column_reference in columns.items():
            by_kind[column_reference["kind"]].append(column)
        monitor = cls(
            by_kind["numeric"],
            by_kind["categorical"],
            by_kind["sequence"],
            warn_psi=warn_psi,
            fail_psi=fail_psi,
            bins=int(reference["bins"]),
            top_tokens=int(reference["top_tokens"]),
            top_categories=int(reference["top_categories"]),
            top_changes=int(reference["top_changes"]),
            ks_sample_size=int(reference["ks_sample_size"]),
            epsilon=float(reference["epsilon"]),
            separator=str(reference["separator"]),
        )
        monitor._check_parameters()
        monitor.reference_ = columns
        return monitor


# ------------------------------------------------------------------------ binning


@dataclass(frozen=True)
class _Bins:
    labels: list[str]
    reference: FloatArray
    current: FloatArray
    test: str | None
    statistic: float
    p_value: float


def _require_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"columns missing from the frame: {missing}")


def _numbers(values: pd.Series) -> FloatArray:
    numbers: FloatArray = pd.to_numeric(values, errors="raise").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    return numbers


def _numeric_bin_counts(edges: Sequence[float], present: FloatArray) -> FloatArray:
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), present, side="left")
    return np.bincount(index, minlength=len(edges) + 1).astype(np.float64)


def _fit_numeric(values: pd.Series, bins: int, sample_size: int) -> NumericReference:
    numbers = _numbers(values)
    present = numbers[~np.isnan(numbers)]
    if present.size:
        # Observed values as edges: interpolated ones would cut empty bins between ties.
        edges = np.unique(np.quantile(present, np.arange(1, bins) / bins, method="inverted_cdf"))
        probabilities = (np.arange(sample_size) + 0.5) / sample_size
        sample = (
            np.quantile(present, probabilities, method="inverted_cdf")
            if present.size > sample_size
            else np.sort(present)
        )
    else:
        edges = sample = np.empty(0)
    return {
        "kind": "numeric",
        "edges": edges.tolist(),
        "counts": _numeric_bin_counts(edges.tolist(), present).astype(np.int64).tolist(),
        "nulls": int(numbers.size - present.size),
        "sample": sample.tolist(),
    }


def _categories(values: pd.Series) -> tuple[pd.Series, int]:
    """Non-NULL values as text, and the number of NULLs."""
    objects = values.astype(object)
    return objects[objects.notna()].astype(str), int(objects.isna().sum())


def _ranked_counts(values: pd.Series) -> pd.Series:
    """Counts per value, most frequent first, ties by value (so the top N is stable)."""
    counts = values.value_counts()
    return counts.iloc[np.lexsort((counts.index.to_numpy(dtype=str), -counts.to_numpy()))]


def _fit_categorical(values: pd.Series) -> CategoricalReference:
    present, nulls = _categories(values)
    counts = _ranked_counts(present)
    return {
        "kind": "categorical",
        "categories": [str(c) for c in counts.index],
        "counts": [int(n) for n in counts],
        "nulls": nulls,
    }


def _token_counts(values: pd.Series, separator: str) -> pd.Series:
    tokens = values.dropna().astype(str).str.split(separator).explode()
    return _ranked_counts(tokens[tokens.notna() & (tokens != "")])


def _fit_sequence(tokens: pd.Series, top: int) -> SequenceReference:
    return {
        "kind": "sequence",
        "tokens": [str(t) for t in tokens.index[:top]],
        "counts": [int(n) for n in tokens.iloc[:top]],
        "other": int(tokens.iloc[top:].sum()),
    }


def _binned(reference: ColumnReference, values: pd.Series, top: int, separator: str) -> _Bins:
    """The reference's bins with today's counts beside them, and the column's test."""
    if reference["kind"] == "numeric":
        return _numeric_bins(reference, values)
    if reference["kind"] == "categorical":
        return _categorical_bins(reference, values, top)
    return _sequence_bins(reference, values, separator)


def _numeric_bins(reference: NumericReference, values: pd.Series) -> _Bins:
    numbers = _numbers(values)
    present = numbers[~np.isnan(numbers)]
    edges = reference["edges"]
    labels = [f"<= {edges[0]:g}"] if edges else ["all values"]
    labels += [f"({low:g}, {high:g}]" for low, high in itertools.pairwise(edges)]
    labels += [f"> {edges[-1]:g}", NULL_BIN] if edges else [NULL_BIN]
    statistic = p_value = math.nan
    if present.size and reference["sample"]:
        result = stats.ks_2samp(reference["sample"], present)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    return _Bins(
        labels,
        np.asarray([*reference["counts"], reference["nulls"]], dtype=np.float64),
        np.append(_numeric_bin_counts(edges, present), numbers.size - present.size),
        "ks",
        statistic,
        p_value,
    )


def _categorical_bins(reference: CategoricalReference, values: pd.Series, top: int) -> _Bins:
    categories, nulls = _categories(values)
    seen = reference["categories"]
    today = categories.value_counts().reindex(seen, fill_value=0).to_numpy(dtype=np.float64)
    # Cells: every seen category, then (new), then NULL.
    reference_cells = np.asarray([*reference["counts"], 0, reference["nulls"]], dtype=np.float64)
    current_cells = np.append(today, [categories.size - today.sum(), nulls])
    statistic, p_value = _chi_square(reference_cells, current_cells)

    kept = min(top, len(seen))

    # For PSI, categories the reference never saw join the pooled tail: in a long-tailed
    # column (city) every month brings new values, which is no shift of the distribution.
    def pooled(cells: FloatArray) -> FloatArray:
        tail = cells[kept : len(seen) + 1].sum()
        return np.concatenate([cells[:kept], [tail], cells[len(seen) + 1 :]])

    return _Bins(
        [*seen[:kept], OTHER_BIN, NULL_BIN],
        pooled(reference_cells),
        pooled(current_cells),
        "chi2",
        statistic,
        p_value,
    )


def _chi_square(reference: FloatArray, current: FloatArray) -> tuple[float, float]:
    """Chi-square test of homogeneity of two rows of counts.

    Cells expected to hold fewer than five of the smaller row are pooled into one, where
    the chi-square approximation holds; the pooling depends only on the cells' totals, on
    which the test conditions, so it does not bias the p-value (pooling by reference
    frequency would: the most frequent reference categories are partly so by chance).
    """
    table = np.vstack([reference, current])
    table = table[:, table.sum(axis=0) > 0]
    expected = table.sum(axis=0) * table.sum(axis=1).min() / table.sum()
    sparse = expected < _MIN_EXPECTED_COUNT
    if sparse.any():
        table = np.column_stack([table[:, ~sparse], table[:, sparse].sum(axis=1)])
    result = stats.chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)


def _sequence_bins(reference: SequenceReference, values: pd.Series, separator: str) -> _Bins:
    tokens = _token_counts(values, separator)
    kept = tokens.reindex(reference["tokens"], fill_value=0)
    return _Bins(
        [*reference["tokens"], OTHER_BIN],
        np.asarray([*reference["counts"], reference["other"]], dtype=np.float64),
        np.asarray([*kept.tolist(), int(tokens.sum() - kept.sum())], dtype=np.float64),
        None,
        math.nan,
        math.nan,
    )


def _top_changes(
    labels: Sequence[str], reference: FloatArray, current: FloatArray, top: int
) -> str:
    """The ``top`` bins whose share moved most, e.g. "F: 50.0% -> 0.0%; M: ..."."""
    # Rounded so that equal changes tie on every platform, and the label breaks the tie.
    changes = np.round(np.abs(current - reference), 12)
    order = sorted(range(len(labels)), key=lambda i: (-changes[i], labels[i]))
    return "; ".join(
        f"{labels[i]}: {reference[i]:.1%} -> {current[i]:.1%}"
        for i in order[:top]
        if changes[i] > 0
    )
