"""The simulator's settings: parameters.yaml's `simulation` section as a typed model.

Validated once, where parameters.yaml is read (orchestration's `Parameters` holds a
`SimulationSettings`); a wrong value fails there with an error that names the setting.
What each setting means is said beside it in parameters.yaml, and how they work together
in thelook/README.md. No field has a default: every value is written once, in
parameters.yaml. Target brands are not simulation settings: they are the campaign's, and
the simulator takes them as an argument of their own.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

# Google's generator: thelook mode draws with these whatever the settings say.
THELOOK_ORDERS_PER_USER = (0.2, 0.5, 0.2, 0.05, 0.05)  # 0..4 orders
THELOOK_ITEMS_PER_ORDER = (0.7, 0.2, 0.05, 0.05)  # 1..4 items


def _some_weight(weights: tuple[float, ...]) -> tuple[float, ...]:
    if sum(weights) <= 0:
        raise ValueError("needs a positive weight: they are normalised to probabilities")
    return weights


# Relative weights: non-negative, at least one, normalised where they are used.
Weights = Annotated[
    tuple[Annotated[float, Field(ge=0)], ...], Field(min_length=1), AfterValidator(_some_weight)
]
Months = tuple[Annotated[int, Field(ge=1, le=12)], ...]  # 1 = January
Share = Annotated[float, Field(ge=0, le=1)]
Factor = Annotated[float, Field(gt=0)]  # multiplies a draw weight


class BehaviourSettings(BaseModel):
    """The knobs that shape which products a customer buys (the behavioural mode's)."""

    # allow_inf_nan: an infinite or NaN weight would turn every draw into NaN silently.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    favourite_brands: int = Field(ge=0)
    brand_popularity_exponent: float
    loyalty_alpha: float = Field(gt=0)
    loyalty_beta: float = Field(gt=0)
    cross_department_customer_share: Share
    cross_department_item_share: Share
    price_tier_affinity: Factor
    seasonal_category_factor: Factor
    winter_months: Months
    winter_categories: tuple[str, ...]
    summer_months: Months
    summer_categories: tuple[str, ...]
    campaign_uplift: Factor

    @property
    def loyal(self) -> bool:
        """Customers have favourite brands and a loyalty to them (never in thelook mode)."""
        return self.favourite_brands > 0


# Google's generator: every product of the home department equally likely, always.
THELOOK_BEHAVIOUR = BehaviourSettings(
    favourite_brands=0,
    brand_popularity_exponent=1.0,
    loyalty_alpha=1.0,
    loyalty_beta=1.0,
    cross_department_customer_share=0.0,
    cross_department_item_share=0.0,
    price_tier_affinity=1.0,
    seasonal_category_factor=1.0,
    winter_months=(),
    winter_categories=(),
    summer_months=(),
    summer_categories=(),
    campaign_uplift=1.0,
)


class SimulationSettings(BehaviourSettings):
    """Everything that determines a simulated shop, but the campaign's target brands.

    The product-choice knobs are `BehaviourSettings`' fields; the `*_in_force` properties
    give what the simulator draws with, which in thelook mode is the generator's.
    """

    mode: Literal["thelook", "behavioural"]
    users: int = Field(ge=1)
    # numpy seeds its streams with it, and a seed sequence takes no negative number.
    seed: int = Field(ge=0)
    start: dt.date
    end: dt.date  # the simulation's "now": fixed, never today()
    orders_per_user_weights: Weights
    items_per_order_weights: Weights
    monthly_order_weights: Weights
    campaign_start: dt.date
    append_rate_floor_days: int = Field(ge=1)

    @field_validator("monthly_order_weights")
    @classmethod
    def _twelve_months(cls, weights: tuple[float, ...]) -> tuple[float, ...]:
        if len(weights) != 12:
            raise ValueError(f"needs 12 values, January first, not {len(weights)}")
        return weights

    @field_validator("end")
    @classmethod
    def _not_before_start(cls, end: dt.date, info: ValidationInfo) -> dt.date:
        start = info.data.get("start")  # absent when start itself was invalid
        if start is not None and end < start:
            raise ValueError(f"end ({end}) is before start ({start})")
        return end

    def with_overrides(self, **changes: Any) -> SimulationSettings:
        """These settings with `changes` applied, validated again as a whole."""
        return type(self).model_validate({**self.model_dump(), **changes})

    @property
    def behavioural(self) -> bool:
        return self.mode == "behavioural"

    @property
    def behaviour_in_force(self) -> BehaviourSettings:
        """The product-choice knobs the simulator draws with: neutral in thelook mode."""
        return self if self.behavioural else THELOOK_BEHAVIOUR

    @property
    def orders_per_user_in_force(self) -> tuple[float, ...]:
        return self.orders_per_user_weights if self.behavioural else THELOOK_ORDERS_PER_USER

    @property
    def items_per_order_in_force(self) -> tuple[float, ...]:
        return self.items_per_order_weights if self.behavioural else THELOOK_ITEMS_PER_ORDER

    @property
    def monthly_order_weights_in_force(self) -> tuple[float, ...]:
        return self.monthly_order_weights if self.behavioural else (1.0,) * 12

    def users_for_order_items(self, order_items: int) -> int:
        """Users whose expected number of order items is `order_items` under these settings."""
        per_user = _mean_count(self.orders_per_user_in_force, 0) * _mean_count(
            self.items_per_order_in_force, 1
        )
        return max(1, round(order_items / per_user))


def _mean_count(weights: tuple[float, ...], first: int) -> float:
    w = np.asarray(weights, dtype=np.float64)
    return float((w * np.arange(first, first + len(w))).sum() / w.sum())
