import numpy as np
import pandas as pd
import pytest

from ml.metrics import evaluate
from ml.slices import buckets, evaluation_slices, slice_label, slice_labeller, top_values


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


def test_slice_labels_read_as_conditions() -> None:
    edges = [1, 2, 3, 5]
    assert slice_label("gender", "F") == "gender = F"
    assert slice_label("gender", "NULL") == "gender missing"
    assert slice_label("country", "other") == "country: other values"
    assert slice_label("prior_orders", "1", edges) == "prior_orders = 1"
    assert slice_label("prior_orders", "3-4", edges) == "prior_orders 3 to 4"
    assert slice_label("prior_orders", "5+", edges) == "prior_orders 5 or more"
    assert slice_label("prior_orders", "NULL", edges) == "prior_orders missing or below 1"
    # A categorical value that looks like a bucket stays a value.
    assert slice_label("size", "3-4") == "size = 3-4"


def test_labeller_labels_every_value_evaluate_reports() -> None:
    """Every (slice, value) evaluate reports for evaluation_slices gets a label without
    Python reprs."""
    frame = pd.DataFrame(
        {
            "gender": ["F", "M", None, "F", "M", "F"],
            "country": ["Oslo", "Lima", "Rome", "Oslo", "Oslo", "Lima"],
            "prior_orders": [1, 2, 7, 0, 3, None],
        }
    )
    bucketed = {"prior_orders": [1, 2, 3, 5]}
    slices = evaluation_slices(
        frame, categorical=["gender", "country"], top_categories=2, bucketed=bucketed
    )
    result = evaluate(
        [1, 0, 1, 0, 1, 0],
        [0.9, 0.1, 0.8, 0.3, 0.6, 0.2],
        slices,
        top_k_percents=[50],
        min_slice_positives=1,
    )
    label = slice_labeller(bucketed)
    labels = result.readable_by_slice(label)["slice"].tolist()
    assert labels == [
        "gender = F",
        "gender = M",
        "gender missing",
        "country = Lima",
        "country = Oslo",
        "country: other values",
        "prior_orders = 1",
        "prior_orders = 2",
        "prior_orders 3 to 4",
        "prior_orders 5 or more",
        "prior_orders missing or below 1",
    ]
    assert not any("(" in text or "'" in text for text in labels)
