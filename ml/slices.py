"""The slices evaluation reports metrics on: who the model works for, and who not."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

OTHER = "other"
# The value ``ml.metrics.evaluate`` reports NULL slice values under.
NULL_SLICE = "NULL"


def top_values(values: pd.Series, keep: int) -> npt.NDArray[np.object_]:
    """The ``keep`` most frequent values as they are, every other value as ``other``.

    A long tail (hundreds of countries or cities) would give slices too thin to measure;
    NULL stays NULL so that ``ml.metrics.evaluate`` reports it as its own slice.

    >>> import pandas as pd
    >>> from ml.slices import top_values
    >>> top_values(pd.Series(["Oslo", "Oslo", "Lima", "Rome", None]), keep=1)
    array(['Oslo', 'Oslo', 'other', 'other', None], dtype=object)
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    kept = set(values.value_counts(dropna=True).index[:keep])
    out = values.astype(object).where(values.isin(kept) | values.isna(), OTHER)
    return out.where(out.notna(), None).to_numpy(dtype=object)


def buckets(values: pd.Series, edges: Sequence[int]) -> npt.NDArray[np.object_]:
    """Integer buckets named by their range: edges [1, 2, 3, 5] give 1, 2, 3-4, 5+.

    Values below the first edge (and NULL) become NULL.

    >>> import pandas as pd
    >>> from ml.slices import buckets
    >>> buckets(pd.Series([0, 1, 2, 3, 4, 9, None]), [1, 2, 3, 5])
    array([None, '1', '2', '3-4', '3-4', '5+', None], dtype=object)
    """
    if list(edges) != sorted(set(edges)) or not edges:
        raise ValueError(f"bucket edges must be increasing and non-empty, got {list(edges)}")
    labels = []
    for low, high in zip(edges, [*edges[1:], None], strict=True):
        if high is None:
            labels.append(f"{low}+")
        elif high - low == 1:
            labels.append(str(low))
        else:
            labels.append(f"{low}-{high - 1}")
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), numbers, side="right") - 1
    out = np.empty(len(numbers), dtype=object)
    valid = (index >= 0) & ~np.isnan(numbers)
    out[valid] = np.asarray(labels, dtype=object)[index[valid]]
    out[~valid] = None
    return out


def evaluation_slices(
    frame: pd.DataFrame,
    *,
    categorical: Sequence[str],
    top_categories: int,
    bucketed: dict[str, Sequence[int]],
) -> dict[str, npt.NDArray[np.object_]]:
    """Slice columns for ``ml.metrics.evaluate``: categorical columns cut to their most
    frequent values, numeric columns cut into buckets.

    >>> import pandas as pd
    >>> from ml.slices import evaluation_slices
    >>> frame = pd.DataFrame({"city": ["Oslo", "Oslo", "Lima"], "prior_orders": [1, 2, 7]})
    >>> slices = evaluation_slices(
    ...     frame, categorical=["city"], top_categories=1, bucketed={"prior_orders": [1, 2, 5]}
    ... )
    >>> {name: values.tolist() for name, values in slices.items()}
    {'city': ['Oslo', 'Oslo', 'other'], 'prior_orders': ['1', '2-4', '5+']}
    """
    slices = {column: top_values(frame[column], top_categories) for column in categorical}
    slices.update({column: buckets(frame[column], edges) for column, edges in bucketed.items()})
    return slices


def slice_label(column: str, value: str, edges: Sequence[int] | None = None) -> str:
    """A slice value as people read it: ``gender = F``, ``prior_orders 3 to 4``.

    ``value`` is as ``ml.metrics.evaluate`` reports it (``NULL`` for missing values);
    ``edges`` are the bucket edges when the column was cut by ``buckets`` (whose labels
    ``3-4`` and ``5+`` become ``3 to 4`` and ``5 or more``), None for a categorical column.

    >>> from ml.slices import slice_label
    >>> slice_label("gender", "F"), slice_label("gender", "NULL"), slice_label("country", "other")
    ('gender = F', 'gender missing', 'country: other values')
    >>> edges = [1, 2, 3, 5]
    >>> [slice_label("prior_orders", v, edges) for v in ["1", "3-4", "5+", "NULL"]]
    ['prior_orders = 1', 'prior_orders 3 to 4', 'prior_orders 5 or more', 'prior_orders missing or below 1']
    """
    if edges is None:
        if value == NULL_SLICE:
            return f"{column} missing"
        if value == OTHER:
            return f"{column}: other values"
        return f"{column} = {value}"
    if value == NULL_SLICE:
        return f"{column} missing or below {edges[0]}" if len(edges) else f"{column} missing"
    if value.endswith("+"):
        return f"{column} {value[:-1]} or more"
    low, dash, high = value.partition("-")
    return f"{column} {low} to {high}" if dash else f"{column} = {value}"


def slice_labeller(bucketed: Mapping[str, Sequence[int]]) -> Callable[[str, str], str]:
    """``slice_label`` for the slices ``evaluation_slices`` made with these bucketed columns
    (every other column categorical).

    >>> from ml.slices import slice_labeller
    >>> label = slice_labeller({"age": [18, 30, 46]})
    >>> label("age", "30-45"), label("gender", "M")
    ('age 30 to 45', 'gender = M')
    """
    edges = {column: list(values) for column, values in bucketed.items()}

    def label(column: str, value: str) -> str:
        return slice_label(column, value, edges.get(column))

    return label
