"""The API's request and response bodies.

A history request carries raw rows as thelook's tables name them (thelook/schema.py):
``customer`` is a raw.users row, ``orders`` raw.orders rows and ``items`` raw.order_items
rows, without user_id (they are the customer's). The features are then computed from
them exactly as the warehouse computes them from its raw tables, cleaning included (the
string 'null', stray spaces, a Cancelled status). Only the columns the features read are
required; the rest may be left out, as an export may leave them out. Timestamps are UTC
instants: one with a zone is converted, one without is taken as UTC, as the loader does.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


class _Row(BaseModel):
    # A misspelt column must not silently become NULL.
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _timestamps_in_utc(cls, value: Any) -> Any:
        return _utc(value) if isinstance(value, dt.datetime) else value

    def raw(self) -> dict[str, Any]:
        return self.model_dump()


class Customer(_Row):
    """A raw.users row."""

    id: int
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    age: int | None = None
    gender: str | None = None
    state: str | None = None
    street_address: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    traffic_source: str | None = None
    created_at: dt.datetime | None = Field(None, description="When the customer signed up.")
    user_geom: str | None = None


class Order(_Row):
    """A raw.orders row: the order's own time. An item whose order has no row here takes
    its order's time from the order's earliest item, as in the warehouse."""

    order_id: int
    status: str | None = None
    gender: str | None = None
    created_at: dt.datetime | None = None
    returned_at: dt.datetime | None = None
    shipped_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    num_of_item: int | None = None


class Item(_Row):
    """A raw.order_items row. ``id`` orders items of equal created_at; when left out, the
    item's position in the list (1, 2, ...) is its id."""

    id: int | None = None
    order_id: int
    product_id: int = Field(description="A product of the warehouse's raw.products.")
    inventory_item_id: int | None = None
    status: str = Field(description="Complete, Shipped, Processing, Returned, Cancelled...")
    created_at: dt.datetime
    shipped_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    returned_at: dt.datetime | None = None
    sale_price: float


class ScoreRequest(BaseModel):
    """Either ``customer_id`` (the warehouse's data of that customer) or ``customer`` with
    ``items`` (and optionally ``orders``): a purchase history given in full."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"customer_id": 123},
                {"customer_id": 123, "as_of": "2026-11-05"},
                {
                    "customer": {
                        "id": 123,
                        "age": 31,
                        "gender": "F",
                        "country": "Brasil",
                        "city": "Sao Paulo",
                        "traffic_source": "Search",
                        "created_at": "2024-02-01T10:00:00Z",
                    },
                    "orders": [{"order_id": 9, "created_at": "2025-03-01T12:00:00Z"}],
                    "items": [
                        {
                            "id": 17,
                            "order_id": 9,
                            "product_id": 13842,
                            "status": "Complete",
                            "created_at": "2025-03-01T12:00:00Z",
                            "sale_price": 25.0,
                        }
                    ],
                    "as_of": "2026-11-05",
                },
            ]
        },
    )

    customer_id: int | None = Field(None, description="A customer of the warehouse.")
    customer: Customer | None = None
    orders: list[Order] | None = None
    items: list[Item] | None = None
    as_of: dt.date | None = Field(
        None,
        description=(
            "The day the features are computed as of (its start, UTC): purchases before it "
            "count. Default: the date marts.customer_features is computed as of."
        ),
    )

    @model_validator(mode="after")
    def _one_subject(self) -> ScoreRequest:
        if (self.customer_id is None) == (self.customer is None):
            raise ValueError("give either customer_id or customer (with items), not both")
        if self.customer is not None and self.items is None:
            raise ValueError("items: required with customer (the customer's order items)")
        if self.customer is None and (self.items is not None or self.orders is not None):
            raise ValueError(
                "items, orders: only with customer; with customer_id the warehouse's are used"
            )
        if self.items is not None:
            ids = [item.id for item in self.items if item.id is not None]
            if len(ids) != len(set(ids)):
                raise ValueError("items: ids must be unique")
            if ids and len(ids) != len(self.items):
                raise ValueError("items: give an id for every item or for none")
        if self.orders is not None:
            order_ids = [order.order_id for order in self.orders]
            if len(order_ids) != len(set(order_ids)):
                raise ValueError("orders: order_id must be unique")
        return self


class ModelSummary(BaseModel):
    name: str
    version: str
    scorer: str


class ScoreResponse(BaseModel):
    customer_id: int
    as_of: dt.date
    score: float = Field(description="Probability that the next order holds a target brand.")
    model: ModelSummary
    features_hash: str = Field(description="sha256 of the features the model saw.")
    path: Literal["features", "warehouse_history", "request_history"] = Field(
        description=(
            "features: the row of marts.customer_features; warehouse_history: computed from "
            "the warehouse's raw rows for another as_of; request_history: from the request."
        )
    )
    features: dict[str, Any] | None = Field(
        None, description="The customer_features row scored (with ?include_features=true)."
    )


class LearnRequest(BaseModel):
    """A realised outcome: whether the next order of ``customer_id`` after ``as_of`` held
    a target brand (training_examples' label)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"customer_id": 123, "as_of": "2026-11-05", "label": 1}]},
    )

    customer_id: int = Field(description="A customer of the warehouse.")
    as_of: dt.date = Field(
        description="The day the customer was scored as of: the features are computed as of it."
    )
    label: Literal[0, 1] = Field(
        description="1: the next order held a target brand; 0: it held none."
    )


class LearnResponse(BaseModel):
    customer_id: int
    as_of: dt.date
    label: int
    score_before: float = Field(
        description="The online champion's probability for the example before learning it."
    )
    learned: int = Field(description="Examples the online champion has learnt in this server.")
    model: ModelSummary
