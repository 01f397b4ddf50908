"""SimulationSettings: parameters.yaml's simulation section, validated, each error named."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from tests.thelook.shipped import shipped_parameters, shipped_settings
from thelook.settings import THELOOK_BEHAVIOUR, BehaviourSettings, SimulationSettings


def test_fields_are_the_parameters_section() -> None:
    assert set(SimulationSettings.model_fields) == set(shipped_parameters()["simulation"])
    settings = shipped_settings()
    assert isinstance(settings.start, dt.date) and isinstance(settings.end, dt.date)
    assert isinstance(settings.monthly_order_weights, tuple)


def test_behaviour_knobs_exist_once() -> None:
    # The simulation's product-choice knobs are BehaviourSettings' own fields.
    assert set(BehaviourSettings.model_fields) < set(SimulationSettings.model_fields)
    behavioural = shipped_settings(mode="behavioural")
    assert behavioural.behaviour_in_force is behavioural
    assert behavioural.behaviour_in_force.loyal
    thelook = shipped_settings(mode="thelook")
    assert thelook.behaviour_in_force == THELOOK_BEHAVIOUR
    assert not THELOOK_BEHAVIOUR.loyal
    assert thelook.monthly_order_weights_in_force == (1.0,) * 12
    assert thelook.orders_per_user_in_force == (0.2, 0.5, 0.2, 0.05, 0.05)
    assert thelook.items_per_order_in_force == (0.7, 0.2, 0.05, 0.05)


def test_missing_and_unknown_settings_are_named() -> None:
    section = dict(shipped_parameters()["simulation"])
    del section["seed"]
    with pytest.raises(ValidationError) as missing:
        SimulationSettings.model_validate(section)
    assert [(e["loc"], e["type"]) for e in missing.value.errors()] == [(("seed",), "missing")]
    with pytest.raises(ValidationError) as unknown:
        shipped_settings(no_such_knob=1)
    assert [(e["loc"], e["type"]) for e in unknown.value.errors()] == [
        (("no_such_knob",), "extra_forbidden")
    ]
    with pytest.raises(ValidationError, match="target_brands"):
        shipped_settings(target_brands=["Hanes"])  # the campaign's, not the simulation's


def test_overrides_are_validated_again() -> None:
    settings = shipped_settings()
    changed = settings.with_overrides(users=10, end=dt.date(2020, 1, 1), mode="thelook")
    assert (changed.users, changed.end, changed.mode) == (10, dt.date(2020, 1, 1), "thelook")
    assert settings == shipped_settings()  # the original is untouched
    with pytest.raises(ValidationError, match="users"):
        settings.with_overrides(users=0)
    with pytest.raises(ValidationError):
        settings.users = 10  # type: ignore[misc]


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("mode", "google"),
        ("users", 0),
        ("seed", -1),
        ("start", "not a date"),
        ("end", dt.date(2018, 12, 31)),  # before start
        ("orders_per_user_weights", []),
        ("orders_per_user_weights", [0.5, -0.1]),
        ("items_per_order_weights", [0, 0]),
        ("monthly_order_weights", [1.0] * 11),
        ("monthly_order_weights", [1.0] * 13),
        ("winter_months", [11, 13]),
        ("summer_months", [0]),
        ("cross_department_customer_share", 1.5),
        ("cross_department_item_share", -0.1),
        ("favourite_brands", -1),
        ("loyalty_alpha", 0),
        ("loyalty_beta", float("nan")),
        ("brand_popularity_exponent", float("inf")),
        ("price_tier_affinity", 0),
        ("seasonal_category_factor", -1),
        ("campaign_uplift", 0),
        ("campaign_start", "2026-02-30"),
        ("append_rate_floor_days", 0),
    ],
)
def test_each_invalid_setting_is_named(setting: str, value: object) -> None:
    with pytest.raises(ValidationError) as invalid:
        shipped_settings(**{setting: value})
    assert {e["loc"][0] for e in invalid.value.errors()} == {setting}


def test_users_for_order_items() -> None:
    # 1.25 orders per user x 1.45 items per order with the generator's weights
    assert shipped_settings(mode="thelook").users_for_order_items(1_812_500) == 1_000_000
    assert shipped_settings().users_for_order_items(1) == 1
    # The settings' own weights count: one order of one item per user.
    single = shipped_settings(orders_per_user_weights=[0, 1], items_per_order_weights=[1])
    assert single.users_for_order_items(500) == 500
