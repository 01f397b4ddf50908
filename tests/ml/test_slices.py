import numpy as np
import pandas as pd
import pytest

from ml.slices import buckets, evaluation_slices, top_values


def test_top_values_pools_the_tail_and_keeps_null() -> None:
    values = pd.Series(["a", "a", "a", "b", "b", "c", None])
    assert list(top_values(values, 2)) == ["a", "a", "a", "b", "b", "other", None]


def test_buckets_name_ranges() -> None:
    out = buckets(pd.Series([1, 2, 3, 4, 5, 9, 0, None]), [1, 2, 3, 5])
    assert list(out) == ["1", "2", "3-4", "3-4", "5+", "5+", None, None]


def test_bucket_edges_must_increase() -> None:
    with pytest.raises(ValueError, match="increasing"):
        buckets(pd.Series([1]), [3, 2])


def test_evaluation_slices_shapes() -> None:
    frame = pd.DataFrame({"gender": ["F", "M", "F"], "prior_orders": [1, 2, 7]})
    slices = evaluation_slices(
        frame, categorical=["gender"], top_categories=5, bucketed={"prior_orders": [1, 2]}
    )
    assert set(slices) == {"gender", "prior_orders"}
    assert np.array_equal(slices["prior_orders"], np.array(["1", "2+", "2+"], dtype=object))
