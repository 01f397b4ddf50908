"""The data contract computed the notebook's way: pandas groupby, ";".join, apply.

An implementation of DESIGN.md's definitions that shares nothing with the dbt models, so
that tests can hold the marts against it, and benchmarks/dbt_features.py can time the
two against each other on the same data. Written as a data scientist would in a
notebook (readable, per-customer Python), not tuned.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html

import duckdb
import numpy as np
import pandas as pd

COUNTRY_NAMES = {"España": "Spain", "Deutschland": "Germany"}


def repair_text(value: object) -> object:
    """HTML entities decoded, Windows-1252 mojibake undone, ';' made harmless."""
    if not isinstance(value, str):
        return value
    text = html.unescape(value).strip()
    # Text that is not mojibake does not survive the round trip and stays as it is.
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        text = text.encode("cp1252").decode("utf-8")
    text = text.replace(";", ",")
    return None if text in ("", "null") else text


def _clean(value: object) -> object:
    if not isinstance(value, str):
        return value
    text = value.strip()
    return None if text in ("", "null") else text


def read_raw(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    """The notebook's one query per table."""
    return {
        name: con.execute(f"select * from raw.{name}").df()
        for name in ("users", "products", "orders", "order_items")
    }


def _purchases(
    raw: dict[str, pd.DataFrame], target_brands: set[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    products = raw["products"].drop_duplicates("id").set_index("id")
    brand = products["brand"].map(repair_text)
    items = raw["order_items"].copy()
    # A NaN or infinite price is no price (staging makes it NULL).
    items["sale_price"] = items["sale_price"].astype(float).replace([np.inf, -np.inf], np.nan)
    items["cancelled"] = items["status"].map(_clean) == "Cancelled"
    items["brand"] = items["product_id"].map(brand).fillna("Unknown")
    for column in ("department", "category"):
        items[column] = items["product_id"].map(products[column].map(repair_text)).fillna("Unknown")
    items["target"] = items["product_id"].map(brand).isin(target_brands) & ~items["cancelled"]

    orders = items.groupby("order_id").agg(
        customer_id=("user_id", "min"),
        first_item_at=("created_at", "min"),
        purchased_items=("cancelled", lambda c: int((~c).sum())),
        label=("target", lambda t: int(t.any())),
    )
    ordered_at = raw["orders"].drop_duplicates("order_id").set_index("order_id")["created_at"]
    orders["ordered_at"] = orders.index.map(ordered_at)
    orders["ordered_at"] = orders["ordered_at"].fillna(orders["first_item_at"])
    purchases = orders[orders["purchased_items"] > 0].reset_index()
    purchases = purchases.sort_values(["customer_id", "ordered_at", "order_id"])
    purchases["order_number"] = purchases.groupby("customer_id").cumcount() + 1

    bought = items[~items["cancelled"]].merge(
        purchases[["order_id", "order_number", "ordered_at"]], on="order_id"
    )
    bought = bought.sort_values(["user_id", "order_number", "created_at", "id"])
    return purchases, bought


def _users(raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    users = raw["users"].sort_values("created_at", ascending=False).drop_duplicates("id")
    out = pd.DataFrame({"customer_id": users["id"]})
    gender = users["gender"].map(_clean).str.upper()
    out["gender"] = gender.where(gender.isin(["F", "M"]))
    out["country"] = users["country"].map(_clean).replace(COUNTRY_NAMES)
    out["city"] = users["city"].map(_clean)
    out["traffic_source"] = users["traffic_source"].map(_clean)
    out["age"] = users["age"].where(users["age"].between(0, 120))
    out["signed_up_at"] = users["created_at"]
    return out.set_index("customer_id")


def _history_features(
    history: pd.DataFrame, as_of: pd.Timestamp, n: int, target_share: float
) -> dict[str, object]:
    days = pd.Timedelta(days=1)
    return {
        "prior_orders": int(history["order_number"].max()),
        "prior_items": len(history),
        "days_since_last_order": (as_of - history["ordered_at"].max()) / days,
        "days_since_first_order": (as_of - history["ordered_at"].min()) / days,
        "avg_item_price": history["sale_price"].mean(),
        "last_item_price": history["sale_price"].iloc[-1],
        "prior_target_brand_share": target_share,
        "prior_target_items": int(history["is_target"].sum()),
        "prior_target_brands": int(history.loc[history["is_target"], "brand"].nunique()),
        "brand_sequence": ";".join(history["brand"].tail(n)),
        "department_sequence": ";".join(history["department"].tail(n)),
        "category_sequence": ";".join(history["category"].tail(n)),
    }


def training_examples(
    raw: dict[str, pd.DataFrame],
    target_brands: list[str],
    sequence_length: int,
    last_order_only: bool = False,
) -> pd.DataFrame:
    """One row per customer and purchase k >= 2, features from purchases 1..k-1."""
    brands = set(target_brands)
    purchases, bought = _purchases(raw, brands)
    users = _users(raw)
    bought["is_target"] = bought["brand"].isin(brands)
    purchases_of = dict(tuple(purchases.groupby("customer_id", sort=False)))
    rows = []
    for customer_id, history in bought.groupby("user_id", sort=False):
        own = purchases_of[customer_id]
        ks = own["order_number"].tolist()[1:]
        if last_order_only:
            ks = ks[-1:]
        for k in ks:
            order = own[own["order_number"] == k].iloc[0]
            before = history[history["order_number"] < k]
            row = {
                "customer_id": customer_id,
                "order_id": order["order_id"],
                "as_of": order["ordered_at"],
                "label": order["label"],
            }
            row.update(
                _history_features(
                    before, order["ordered_at"], sequence_length, before["is_target"].mean()
                )
            )
            rows.append(row)
    frame = pd.DataFrame(rows)
    # Scored customers are customers users knows; their orphan purchases still train.
    if len(frame):
        frame = frame[frame["customer_id"].isin(users.index)]
    return _with_users(frame, users)


def customer_features(
    raw: dict[str, pd.DataFrame], target_brands: list[str], sequence_length: int, as_of: dt.date
) -> pd.DataFrame:
    """One row per customer with a purchase before as_of, features from those purchases."""
    brands = set(target_brands)
    _, bought = _purchases(raw, brands)
    users = _users(raw)
    at = pd.Timestamp(as_of)
    bought = bought[bought["ordered_at"] < at].copy()
    bought["is_target"] = bought["brand"].isin(brands)
    rows = []
    for customer_id, history in bought.groupby("user_id", sort=False):
        row: dict[str, object] = {"customer_id": customer_id, "as_of": at}
        row.update(_history_features(history, at, sequence_length, history["is_target"].mean()))
        # The instants the days_since columns count from, which the mart keeps.
        row["last_order_at"] = history["ordered_at"].max()
        row["first_order_at"] = history["ordered_at"].min()
        rows.append(row)
    frame = pd.DataFrame(rows)
    # Scored customers are customers users knows; their orphan purchases still train.
    if len(frame):
        frame = frame[frame["customer_id"].isin(users.index)]
    return _with_users(frame, users, keep_signup=True)


def _with_users(
    frame: pd.DataFrame, users: pd.DataFrame, keep_signup: bool = False
) -> pd.DataFrame:
    if frame.empty:
        return frame
    joined = frame.join(users, on="customer_id")
    joined["days_since_signup"] = (joined["as_of"] - joined["signed_up_at"]) / pd.Timedelta(days=1)
    return joined if keep_signup else joined.drop(columns="signed_up_at")
