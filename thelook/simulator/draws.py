"""The simulator's draws, in numpy: users, latent state, orders, items and their truth.

Nothing here touches the warehouse: `staging` turns these arrays into tables. Timestamps
are microseconds since the epoch (naive UTC), -1 where NULL. Every concern draws from its
own stream keyed by (seed, concern[, day]) (thelook/README.md, "Determinism").

Kept whole: every stream the simulator draws from is keyed here, and a concern's key must
be unique among them all for the streams to stay independent; one file shows them at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zlib
from dataclasses import dataclass

import numpy as np

from thelook import behaviour as bh
from thelook.settings import SimulationSettings

# The generator's constants, as measured on its output.
STATUSES = ("Complete", "Cancelled", "Returned", "Processing", "Shipped")
STATUS_WEIGHTS = (0.25, 0.15, 0.10, 0.20, 0.30)
TRAFFIC_SOURCES = ("Search", "Organic", "Facebook", "Email", "Display")
TRAFFIC_WEIGHTS = (0.70, 0.15, 0.06, 0.05, 0.04)
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
AGE_RANGE = (12, 70)  # inclusive, as observed in the generator's output
RECENT_SIGNUP_SHARE = 0.025  # signed up within the last RECENT_SIGNUP_DAYS
RECENT_SIGNUP_DAYS = 7
# Item created_at = order created_at + whole days + an hour jitter, measured on the output.
ITEM_SAME_DAY_SHARE = 0.58  # else 1..ITEM_MAX_DAYS days later, uniformly
ITEM_MAX_DAYS = 4
ITEM_EARLIER_SHARE = 0.95  # jitter in [-4h, 0), else [0, 4h)
ITEM_JITTER_HOURS = 4

US_PER_DAY = 86_400_000_000
US_PER_HOUR = 3_600_000_000
_STATUS_COMPLETE, _STATUS_RETURNED, _STATUS_SHIPPED = (
    STATUSES.index(s) for s in ("Complete", "Returned", "Shipped")
)


# --------------------------------------------------------------------------- randomness


def rng(seed: int, concern: str, day: dt.date | None = None) -> np.random.Generator:
    """One independent stream per (seed, concern[, day]): a new concern reshuffles nothing."""
    key = [seed, zlib.crc32(concern.encode())]
    if day is not None:
        key.append(day.year * 10_000 + day.month * 100 + day.day)
    return np.random.default_rng(key)


def choice(gen: np.random.Generator, weights: tuple[float, ...], n: int) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return gen.choice(len(p), size=n, p=p / p.sum())


def us(day: dt.date) -> int:
    """Microseconds since the epoch of a date's midnight (naive UTC)."""
    return int((day - dt.date(1970, 1, 1)).days) * US_PER_DAY


def _month_index(ts_us: np.ndarray) -> np.ndarray:
    return (ts_us.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64) % 12).astype(
        np.int64
    )


def month_weights(settings: SimulationSettings) -> np.ndarray:
    """Relative order volume of each month, January first, as the simulator draws it."""
    return np.asarray(settings.monthly_order_weights_in_force, dtype=np.float64)


# --------------------------------------------------------------------------- users


@dataclass(frozen=True)
class Lookups:
    """The shipped locations and names, as users draw them (by index)."""

    location_cdf: np.ndarray
    name_counts: dict[str, int]


def draw_users(
    seed: int, day: dt.date | None, signup_us: np.ndarray, first_id: int, lk: Lookups
) -> dict[str, np.ndarray]:
    """Numeric columns of new users; text is assembled from them in SQL."""
    n = len(signup_us)
    gen = rng(seed, "users", day)
    gender = gen.integers(0, 2, size=n)
    first_count = np.where(
        gender == 0, lk.name_counts["first_name_M"], lk.name_counts["first_name_F"]
    )
    location = np.searchsorted(lk.location_cdf, gen.random(n), side="right")
    street_digits = gen.integers(3, 6, size=n)
    return {
        "id": np.arange(first_id, first_id + n, dtype=np.int64),
        "gender": gender.astype(np.int8),
        "age": gen.integers(AGE_RANGE[0], AGE_RANGE[1] + 1, size=n),
        "created_at": signup_us,
        "traffic": choice(gen, TRAFFIC_WEIGHTS, n),
        "location": np.minimum(location, len(lk.location_cdf) - 1),
        "first_name": (gen.random(n) * first_count).astype(np.int64),
        "last_name": gen.integers(0, lk.name_counts["last_name"], size=n),
        "domain": gen.integers(0, len(EMAIL_DOMAINS), size=n),
        "street_digits": street_digits,
        "street_number": (gen.random(n) * 10.0**street_digits).astype(np.int64),
        "street_name": gen.integers(0, lk.name_counts["last_name"], size=n),
        "street_suffix": gen.integers(0, lk.name_counts["street_suffix"], size=n),
        "unit_kind": gen.choice(3, size=n, p=[0.5, 0.25, 0.25]),  # none / Apt. / Suite
        "unit_number": gen.integers(100, 1000, size=n),
    }


def concat_users(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([u[k] for u in parts]) for k in parts[0]}


# --------------------------------------------------------------------------- world state


@dataclass
class World:
    """Catalogue, market and every customer's latent state, aligned by customer row."""

    settings: SimulationSettings
    catalogue: bh.Catalogue
    market: bh.Market
    latent: bh.Latent
    user_id: np.ndarray
    signup_at: np.ndarray
    base_orders: np.ndarray
    order_rate: np.ndarray  # orders per day, for append_days


# --------------------------------------------------------------------------- orders and items


@dataclass
class Orders:
    """Orders with their items, as numpy columns (one concern's arrays stay aligned)."""

    order_id: np.ndarray
    user_id: np.ndarray
    gender: np.ndarray
    created_at: np.ndarray
    status: np.ndarray
    shipped_at: np.ndarray  # -1 where NULL
    delivered_at: np.ndarray
    returned_at: np.ndarray
    num_of_item: np.ndarray
    p_target: np.ndarray
    item_id: np.ndarray
    item_order: np.ndarray  # row in the order arrays
    item_product: np.ndarray  # catalogue index
    item_created_at: np.ndarray


def concat_orders(parts: list[Orders]) -> Orders:
    offsets = np.cumsum([0] + [len(p.order_id) for p in parts[:-1]])
    merged = {}
    for f in dataclasses.fields(Orders):
        arrays = [getattr(p, f.name) for p in parts]
        if f.name == "item_order":
            arrays = [a + off for a, off in zip(arrays, offsets, strict=True)]
        merged[f.name] = np.concatenate(arrays)
    return Orders(**merged)


def draw_orders(
    seed: int,
    day: dt.date | None,
    customer: np.ndarray,
    created_at: np.ndarray,
    first_order_id: int,
    first_item_id: int,
    not_before_us: int | None,
    world: World,
) -> Orders:
    """Status, timestamps, items and truth of orders already placed by `customer` at times."""
    settings = world.settings
    items_weights = settings.items_per_order_in_force
    # ids as the generator numbers them: user by user for the history, by time for a day
    order = (
        np.lexsort((created_at, customer))
        if not_before_us is None
        else np.argsort(created_at, kind="stable")
    )
    customer, created_at = customer[order], created_at[order]
    n = len(customer)
    gen = rng(seed, "order_status", day)
    status = choice(gen, STATUS_WEIGHTS, n)
    shipped = created_at + (gen.random(n) * 3 * US_PER_DAY).astype(np.int64)
    delivered = shipped + (gen.random(n) * 5 * US_PER_DAY).astype(np.int64)
    returned = delivered + (gen.random(n) * 3 * US_PER_DAY).astype(np.int64)
    has_shipped = np.isin(status, (_STATUS_COMPLETE, _STATUS_RETURNED, _STATUS_SHIPPED))
    has_delivered = np.isin(status, (_STATUS_COMPLETE, _STATUS_RETURNED))
    gen = rng(seed, "order_items", day)
    num_of_item = choice(gen, items_weights, n) + 1
    item_order = np.repeat(np.arange(n), num_of_item)
    m = len(item_order)
    days_later = np.where(
        gen.random(m) < ITEM_SAME_DAY_SHARE, 0, gen.integers(1, ITEM_MAX_DAYS + 1, size=m)
    )
    jitter = gen.random(m) * ITEM_JITTER_HOURS * US_PER_HOUR
    jitter = np.where(gen.random(m) < ITEM_EARLIER_SHARE, -jitter, jitter).astype(np.int64)
    item_created = created_at[item_order] + days_later * US_PER_DAY + jitter
    if not_before_us is not None:
        item_created = np.maximum(item_created, not_before_us)
    month = _month_index(created_at)
    phase = (created_at >= us(settings.campaign_start)).astype(np.int64)
    product = bh.draw_products(
        rng(seed, "products", day),
        world.catalogue,
        world.market,
        world.latent,
        customer[item_order],
        month[item_order],
        phase[item_order],
    )
    q = bh.target_item_probability(
        world.catalogue, world.market, world.latent, customer, month, phase
    )
    return Orders(
        order_id=np.arange(first_order_id, first_order_id + n, dtype=np.int64),
        user_id=world.user_id[customer],
        gender=world.latent.home_department[customer],
        created_at=created_at,
        status=status,
        shipped_at=np.where(has_shipped, shipped, -1),
        delivered_at=np.where(has_delivered, delivered, -1),
        returned_at=np.where(status == _STATUS_RETURNED, returned, -1),
        num_of_item=num_of_item,
        p_target=bh.order_target_probability(q, items_weights),
        item_id=np.arange(first_item_id, first_item_id + m, dtype=np.int64),
        item_order=item_order,
        item_product=product,
        item_created_at=item_created,
    )


# --------------------------------------------------------------------------- the history


def draw_history(
    settings: SimulationSettings, catalogue: bh.Catalogue, lk: Lookups
) -> tuple[dict[str, np.ndarray], World, Orders]:
    """The whole shop from `start` to `end`: its users, their world and their orders."""
    start_us, now_us = us(settings.start), us(settings.end + dt.timedelta(days=1))
    n = settings.users
    behaviour = settings.behaviour_in_force

    gen = rng(settings.seed, "signup")
    recent = gen.random(n) < RECENT_SIGNUP_SHARE
    window_start = np.where(
        recent, max(start_us, now_us - RECENT_SIGNUP_DAYS * US_PER_DAY), start_us
    )
    signup = np.sort(window_start + (gen.random(n) * (now_us - window_start)).astype(np.int64))
    users = draw_users(settings.seed, None, signup, 1, lk)
    latent = bh.draw_latent(rng(settings.seed, "latent"), users["gender"], catalogue, behaviour)

    gen = rng(settings.seed, "orders")
    base_orders = choice(gen, settings.orders_per_user_in_force, n)
    customer = np.repeat(np.arange(n), base_orders)
    created = _seasonal_times(gen, signup[customer], now_us, settings)
    tenure_days = (now_us - signup) / US_PER_DAY
    world = World(
        settings=settings,
        catalogue=catalogue,
        market=bh.build_market(catalogue, behaviour),
        latent=latent,
        user_id=users["id"],
        signup_at=signup,
        base_orders=base_orders,
        order_rate=base_orders / np.maximum(tenure_days, settings.append_rate_floor_days),
    )
    orders = draw_orders(settings.seed, None, customer, created, 1, 1, None, world)
    return users, world, orders


def _seasonal_times(
    gen: np.random.Generator, lower_us: np.ndarray, now_us: int, settings: SimulationSettings
) -> np.ndarray:
    """Times in [lower, now) with density proportional to the month's order weight."""
    days = np.arange(
        np.datetime64(settings.start, "D"),
        np.datetime64(settings.end, "D") + 1,
        dtype="datetime64[D]",
    )
    weight = month_weights(settings)[days.astype("datetime64[M]").astype(np.int64) % 12]
    bounds = np.append(days.astype("datetime64[us]").astype(np.int64), now_us).astype(np.float64)
    cum = np.append(0.0, np.cumsum(weight))
    low = np.interp(lower_us.astype(np.float64), bounds, cum)
    v = low + gen.random(len(lower_us)) * (cum[-1] - low)
    t = np.interp(v, cum, bounds).astype(np.int64)
    return np.asarray(np.clip(t, lower_us, now_us - 1), dtype=np.int64)


# --------------------------------------------------------------------------- appended days


@dataclass
class NextIds:
    """The next free id of each table that append_days adds rows to."""

    user: int
    order: int
    item: int


def draw_day(
    world: World, day: dt.date, ids: NextIds, lk: Lookups, not_before_us: int
) -> tuple[dict[str, np.ndarray], Orders]:
    """One appended day: new customers sign up and join `world`, then everyone may order.

    `ids` moves past the rows drawn; items are clipped to start at `not_before_us`.
    """
    settings = world.settings
    seed = settings.seed
    base_days = (settings.end - settings.start).days + 1
    signups_per_day = settings.users * (1 - RECENT_SIGNUP_SHARE) / base_days
    weights = month_weights(settings)
    month_factor = weights / weights.mean()
    day_us = us(day)

    gen = rng(seed, "append_signup", day)
    n_new = int(gen.poisson(signups_per_day))
    signup = np.sort(day_us + (gen.random(n_new) * US_PER_DAY).astype(np.int64))
    users = draw_users(seed, day, signup, ids.user, lk)
    ids.user += n_new
    latent = bh.draw_latent(
        rng(seed, "append_latent", day),
        users["gender"],
        world.catalogue,
        settings.behaviour_in_force,
    )
    new_orders = choice(
        rng(seed, "append_base_orders", day), settings.orders_per_user_in_force, n_new
    )
    world.latent = bh.concat_latent([world.latent, latent])
    world.user_id = np.concatenate([world.user_id, users["id"]])
    world.signup_at = np.concatenate([world.signup_at, signup])
    world.base_orders = np.concatenate([world.base_orders, new_orders])
    world.order_rate = np.concatenate(
        [world.order_rate, new_orders / settings.append_rate_floor_days]
    )
    # A customer is exposed for the part of the day after its signup.
    opens = np.maximum(world.signup_at, day_us)
    exposure = np.clip((day_us + US_PER_DAY - opens) / US_PER_DAY, 0.0, 1.0)
    gen = rng(seed, "append_orders", day)
    month = (np.datetime64(day, "M").astype(np.int64)) % 12
    counts = gen.poisson(world.order_rate * exposure * month_factor[month])
    customer = np.repeat(np.arange(len(world.user_id)), counts)
    start = opens[customer]
    created = start + (gen.random(len(customer)) * (day_us + US_PER_DAY - start)).astype(np.int64)
    orders = draw_orders(seed, day, customer, created, ids.order, ids.item, not_before_us, world)
    ids.order += len(orders.order_id)
    ids.item += len(orders.item_id)
    return users, orders
