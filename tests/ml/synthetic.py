"""Synthetic training examples with the marts' column contract, made in code."""

from __future__ import annotations

import numpy as np
import pandas as pd

BRANDS = ["Calvin Klein", "Levi's", "Allegra K", "Nike", "Columbia", "Carhartt", "Hanes"]
DEPARTMENTS = ["Men", "Women"]
CATEGORIES = ["Jeans", "Tops & Tees", "Swim", "Outerwear & Coats"]


def make_examples(n: int, seed: int, signal_brand: str = "Calvin Klein") -> pd.DataFrame:
    """Examples whose label is 1 when the brand sequence holds ``signal_brand``, with 10%
    of labels flipped; everything else is noise, and NULLs sit in categorical columns."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 5, size=n)
    brands = [list(rng.choice(BRANDS, size=k)) for k in lengths]
    has_signal = np.array([signal_brand in b for b in brands])
    label = np.where(rng.random(n) < 0.1, ~has_signal, has_signal).astype(np.int64)
    as_of = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 120 * 86400, n), unit="s")
    return pd.DataFrame(
        {
            "customer_id": np.arange(n, dtype=np.int64) + 1,
            "order_id": np.arange(n, dtype=np.int64) + 10_001,
            "as_of": as_of,
            "label": label,
            "gender": rng.choice(np.array(["M", "F", None], dtype=object), size=n),
            "country": rng.choice(np.array(["United States", "China", "Brasil"]), size=n),
            "city": rng.choice(np.array(["Shanghai", "New York", None], dtype=object), size=n),
            "traffic_source": rng.choice(np.array(["Search", "Email", None], dtype=object), size=n),
            "age": rng.integers(12, 70, size=n).astype(np.float64),
            "prior_orders": lengths.astype(np.float64),
            "prior_items": lengths.astype(np.float64),
            "days_since_last_order": rng.exponential(60, size=n),
            "days_since_first_order": rng.exponential(300, size=n),
            "days_since_signup": rng.exponential(400, size=n),
            "avg_item_price": rng.gamma(2.0, 30.0, size=n),
            "last_item_price": rng.gamma(2.0, 30.0, size=n),
            "prior_target_brand_share": rng.random(n),
            "brand_sequence": [";".join(b) for b in brands],
            "department_sequence": [";".join(rng.choice(DEPARTMENTS, size=k)) for k in lengths],
            "category_sequence": [";".join(rng.choice(CATEGORIES, size=k)) for k in lengths],
        }
    )
