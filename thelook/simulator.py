"""Simulated thelook_ecommerce shop: raw tables plus the ground truth behind them.

Two modes share one process.

**thelook** reproduces Google's thelook generator (the program behind the public BigQuery
dataset). Users: gender 50/50, age uniform 12-70, signup uniform between `start` and the
end of `end` (plus 2.5% of users who signed up within the last 7 days, as in the
generator's output), traffic source Search .70 / Organic .15 / Facebook .06 / Email .05 /
Display .04, location drawn from the reference output's (country, state, city, postal code)
frequencies, faker-like names, e-mail first+last@example.{com,org,net}. Each user places
0-4 orders (weights .2/.5/.2/.05/.05) at times uniform between signup and the end; an
order has 1-4 items (.7/.2/.05/.05) and one status for all of them (Complete .25,
Cancelled .15, Returned .10, Processing .20, Shipped .30) with shipped_at = created +
U(0, 3 days), delivered_at = shipped + U(0, 5 days), returned_at = delivered + U(0, 3 days)
where the status implies them, copied to the items. Item created_at is the order's plus
0 days (58%) or 1-4 days, minus up to 4 hours (95%) or plus up to 4 hours, as measured on
the generator's output; so some items lie up to 4 days and 4 hours after `end`, as in
real exports (and in the generator's).
Every product is drawn uniformly from the customer's gender department (M -> Men,
F -> Women) and sells at its retail_price. Here no history predicts the next brand.

**behavioural** (default) keeps that shape and plants structure a model can learn.
Each customer has a latent state drawn at signup:

- favourite brands: `favourite_brands` brands of the home department, drawn with
  replacement with probability proportional to (number of the brand's products in the
  department) ** `brand_popularity_exponent`;
- loyalty ~ Beta(`loyalty_alpha`, `loyalty_beta`): each item is, with probability =
  loyalty, a uniformly chosen product of a uniformly chosen favourite (a "loyal" draw),
  otherwise a "market" draw;
- cross-department shopping: a share `cross_department_customer_share` of customers take
  each market draw from the other department with probability
  `cross_department_item_share`;
- a preferred price tier (quartile of retail_price within the department, uniform): in
  market draws a product of that tier weighs `price_tier_affinity` times more.

Market draws are weighted per product, the weights depending on the order's month and on
the campaign: in `winter_months` the `winter_categories` weigh `seasonal_category_factor`
times more, likewise `summer_months` / `summer_categories`; from `campaign_start` on,
products of `target_brands` weigh `campaign_uplift` times more (the drift to detect).
Order volume follows `monthly_order_weights` (order times are drawn from a density over
[signup, end] proportional to the month's weight; the thelook mode's is flat). Orders per
user and items per order use `orders_per_user_weights` / `items_per_order_weights`
(defaults: the generator's). Status, timestamps, ids and text columns are as in thelook.

**Ground truth.** Items are i.i.d. given (latent state, order month, campaign phase), so
`truth.orders.p_target` = 1 - sum_n P(n items) (1 - q)^n, with q the exact per-item
probability of a target brand, is the probability that the order holds a target-brand
item. Status is independent of the items, so for every non-cancelled order p_target is
exactly P(label = 1). In thelook mode q is the department's target-brand share.
`truth.customers` holds the latent state, `truth.simulation` the config, mode, seed and
current end date. Target brands match products.csv.gz brand strings exactly.

**append_days.** `simulate` draws the past as the generator does: a number of orders per
user, placed over [signup, end]. To continue it, each customer keeps a stationary Poisson
order rate, the maximum-likelihood rate of its simulated history:
base orders / max(tenure at the base end in days, `append_rate_floor_days`) (the floor
stops customers who signed up on the last day from ordering daily forever). Each appended
day, new users sign up at the base's average rate (users * 0.975 / base days, Poisson),
draw their latent state and their order count from the same weights, and order at rate
count / `append_rate_floor_days`; every customer then places Poisson(rate * month weight /
mean month weight) orders that day, with items drawn by the same behaviour, so truth
stays exact. Each day's randomness derives from (seed, concern, date) only, and ids
continue from the warehouse's maximum, so the same sequence of appends (in any split
into calls) yields the same data. Items of appended orders are clipped to start no earlier
than the first appended day, so partitions up to the old end are never touched; items
dated after the new end (the generator's future quirk) are written into their partitions
together with the rows those partitions already held. Note that the generator's 2.5% of
last-week signups, ordering within days of signing up, make the base's last week spike in
order volume (as in Google's output); appended days continue at the pre-spike level.

**Determinism.** Every concern (signups, user attributes, latent state, order counts and
times, status, items, products) draws from its own numpy stream keyed by (seed, concern)
and, for appended days, the date: adding a knob or a concern reshuffles nothing else.
`SimulationConfig.users_for_order_items` inverts the config's expected items per user
(1.25 orders x 1.45 items with the generator's weights).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import typing
import zlib
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa

from thelook import behaviour as bh
from thelook.schema import RAW_SCHEMA, TABLES
from thelook.warehouse import apply_raw_writes, clear_raw, first_row, partition_id_sql, transaction

TRUTH_SCHEMA = "truth"
SOURCE = "simulator"

# The generator's constants (thelook mode uses them; behavioural defaults equal them).
THELOOK_ORDERS_PER_USER = (0.2, 0.5, 0.2, 0.05, 0.05)  # 0..4 orders
THELOOK_ITEMS_PER_ORDER = (0.7, 0.2, 0.05, 0.05)  # 1..4 items
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


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that determines a simulated world; see the module docstring for meaning."""

    # No defaults: every value comes from parameters.yaml (config_from_parameters), so the
    # settings are written down once.
    mode: Literal["thelook", "behavioural"]
    users: int
    seed: int
    start: dt.date
    end: dt.date  # the simulation's "now": fixed, never today()
    target_brands: tuple[str, ...]
    orders_per_user_weights: tuple[float, ...]
    items_per_order_weights: tuple[float, ...]
    favourite_brands: int
    brand_popularity_exponent: float
    loyalty_alpha: float
    loyalty_beta: float
    cross_department_customer_share: float
    cross_department_item_share: float
    price_tier_affinity: float
    monthly_order_weights: tuple[float, ...]
    seasonal_category_factor: float
    winter_months: tuple[int, ...]
    winter_categories: tuple[str, ...]
    summer_months: tuple[int, ...]
    summer_categories: tuple[str, ...]
    campaign_start: dt.date
    campaign_uplift: float
    append_rate_floor_days: float

    def __post_init__(self) -> None:
        if self.mode not in ("thelook", "behavioural"):
            raise ValueError(f"mode must be 'thelook' or 'behavioural', not {self.mode!r}")
        if self.users < 1 or self.end < self.start:
            raise ValueError("need at least one user and start <= end")
        if len(self.monthly_order_weights) != 12:
            raise ValueError("monthly_order_weights needs 12 values, January first")
        if not 0 <= self.cross_department_customer_share <= 1:
            raise ValueError("cross_department_customer_share must lie in [0, 1]")
        if not 0 <= self.cross_department_item_share <= 1:
            raise ValueError("cross_department_item_share must lie in [0, 1]")

    @property
    def behavioural(self) -> bool:
        return self.mode == "behavioural"

    def behaviour(self) -> bh.Behaviour:
        """The product-choice knobs in force; all neutral in thelook mode."""
        if not self.behavioural:
            return bh.Behaviour(0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, (), (), (), (), 1.0, False)
        return bh.Behaviour(
            favourite_brands=self.favourite_brands,
            brand_popularity_exponent=self.brand_popularity_exponent,
            loyalty_alpha=self.loyalty_alpha,
            loyalty_beta=self.loyalty_beta,
            cross_department_customer_share=self.cross_department_customer_share,
            cross_department_item_share=self.cross_department_item_share,
            price_tier_affinity=self.price_tier_affinity,
            seasonal_category_factor=self.seasonal_category_factor,
            winter_months=self.winter_months,
            winter_categories=self.winter_categories,
            summer_months=self.summer_months,
            summer_categories=self.summer_categories,
            campaign_uplift=self.campaign_uplift,
            loyal=self.favourite_brands > 0,
        )

    @property
    def orders_weights(self) -> tuple[float, ...]:
        return self.orders_per_user_weights if self.behavioural else THELOOK_ORDERS_PER_USER

    @property
    def items_weights(self) -> tuple[float, ...]:
        return self.items_per_order_weights if self.behavioural else THELOOK_ITEMS_PER_ORDER

    @property
    def month_weights(self) -> np.ndarray:
        if not self.behavioural:
            return np.ones(12)
        return np.asarray(self.monthly_order_weights, dtype=np.float64)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=str, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SimulationConfig:
        hints = typing.get_type_hints(cls)
        unknown = set(values) - set(hints)
        if unknown:
            raise ValueError(f"unknown simulation setting(s): {', '.join(sorted(unknown))}")
        missing = set(hints) - set(values)
        if missing:
            raise ValueError(f"missing simulation setting(s): {', '.join(sorted(missing))}")
        converted: dict[str, Any] = {}
        for name, value in values.items():
            if hints[name] is dt.date and isinstance(value, str):
                value = dt.date.fromisoformat(value)
            elif typing.get_origin(hints[name]) is tuple and value is not None:
                value = tuple(value)
            converted[name] = value
        return cls(**converted)

    def users_for_order_items(self, order_items: int) -> int:
        """Users whose expected number of order items is `order_items` under this config."""
        per_user = _mean_count(self.orders_weights, 0) * _mean_count(self.items_weights, 1)
        return max(1, round(order_items / per_user))


class SimulationError(RuntimeError):
    """The warehouse cannot be simulated into as asked (e.g. no simulation to append to)."""


@dataclass(frozen=True)
class SimulationResult:
    """What one simulate / append_days call wrote."""

    # table -> rows written (raw.* and truth.*); for an append, order_items counts the
    # rows of rewritten future-dated partitions too
    rows: dict[str, int]
    first_partition: str | None  # order_items partitions written, YYYYMMDD
    last_partition: str | None
    end: dt.date  # the simulation's end date after the call
    config: SimulationConfig

    def describe(self) -> str:
        """A few lines for the CLI."""
        c = self.config
        lines = [f"simulated {c.mode} shop (seed {c.seed}), now ending {self.end.isoformat()}"]
        lines += [f"  {table:<26}{rows:>12,} rows" for table, rows in self.rows.items()]
        if self.first_partition:
            lines.append(
                f"  order_items partitions written: {self.first_partition} .. {self.last_partition}"
            )
        return "\n".join(lines)


def config_from_parameters(params: dict[str, Any], **overrides: Any) -> SimulationConfig:
    """The config of parameters.yaml's `simulation` section and campaign target brands."""
    values = dict(params.get("simulation") or {})
    values["target_brands"] = params["campaign"]["target_brands"]
    values.update(overrides)
    return SimulationConfig.from_dict(values)


def _mean_count(weights: tuple[float, ...], first: int) -> float:
    w = np.asarray(weights, dtype=np.float64)
    return float((w * np.arange(first, first + len(w))).sum() / w.sum())


# --------------------------------------------------------------------------- randomness


def _rng(seed: int, concern: str, day: dt.date | None = None) -> np.random.Generator:
    """One independent stream per (seed, concern[, day]): a new concern reshuffles nothing."""
    key = [seed, zlib.crc32(concern.encode())]
    if day is not None:
        key.append(int(day.strftime("%Y%m%d")))
    return np.random.default_rng(key)


def _choice(rng: np.random.Generator, weights: tuple[float, ...], n: int) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(p), size=n, p=p / p.sum())


def _us(day: dt.date) -> int:
    """Microseconds since the epoch of a date's midnight (naive UTC)."""
    return int((day - dt.date(1970, 1, 1)).days) * US_PER_DAY


def _month_index(ts_us: np.ndarray) -> np.ndarray:
    return (ts_us.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64) % 12).astype(
        np.int64
    )


# --------------------------------------------------------------------------- lookups


@dataclass(frozen=True)
class _Lookups:
    location_cdf: np.ndarray
    name_counts: dict[str, int]


def _register_lookups(con: duckdb.DuckDBPyConnection) -> _Lookups:
    """Temp tables of shipped locations and names, joined by index to build text columns."""
    con.execute(
        """create or replace temp table _sim_locations as
           select (row_number() over (order by country, state, city, postal_code) - 1) as idx, *
           from read_csv(?, header = true, all_varchar = true)""",
        [bh.data_path("locations.csv.gz")],
    )
    con.execute(
        """create or replace temp table _sim_names as
           select kind, value, (row_number() over (partition by kind order by value) - 1) as idx
           from read_csv(?, header = true, all_varchar = true)""",
        [bh.data_path("names.csv.gz")],
    )
    w_col = con.execute(
        "select weight::double as weight from _sim_locations order by idx"
    ).fetchnumpy()
    w = np.asarray(w_col["weight"], dtype=np.float64)
    counts = dict(con.execute("select kind, count(*) from _sim_names group by kind").fetchall())
    return _Lookups(np.cumsum(w) / w.sum(), counts)


# --------------------------------------------------------------------------- users


def _draw_users(
    seed: int, day: dt.date | None, signup_us: np.ndarray, first_id: int, lk: _Lookups
) -> dict[str, np.ndarray]:
    """Numeric columns of new users; text is assembled from them in SQL."""
    n = len(signup_us)
    rng = _rng(seed, "users", day)
    gender = rng.integers(0, 2, size=n)
    first_count = np.where(
        gender == 0, lk.name_counts["first_name_M"], lk.name_counts["first_name_F"]
    )
    location = np.searchsorted(lk.location_cdf, rng.random(n), side="right")
    street_digits = rng.integers(3, 6, size=n)
    return {
        "id": np.arange(first_id, first_id + n, dtype=np.int64),
        "gender": gender.astype(np.int8),
        "age": rng.integers(AGE_RANGE[0], AGE_RANGE[1] + 1, size=n),
        "created_at": signup_us,
        "traffic": _choice(rng, TRAFFIC_WEIGHTS, n),
        "location": np.minimum(location, len(lk.location_cdf) - 1),
        "first_name": (rng.random(n) * first_count).astype(np.int64),
        "last_name": rng.integers(0, lk.name_counts["last_name"], size=n),
        "domain": rng.integers(0, len(EMAIL_DOMAINS), size=n),
        "street_digits": street_digits,
        "street_number": (rng.random(n) * 10.0**street_digits).astype(np.int64),
        "street_name": rng.integers(0, lk.name_counts["last_name"], size=n),
        "street_suffix": rng.integers(0, lk.name_counts["street_suffix"], size=n),
        "unit_kind": rng.choice(3, size=n, p=[0.5, 0.25, 0.25]),  # none / Apt. / Suite
        "unit_number": rng.integers(100, 1000, size=n),
    }


def _stage_users(con: duckdb.DuckDBPyConnection, users: dict[str, np.ndarray]) -> None:
    con.register("_sim_users_num", _arrow(users, timestamps=("created_at",)))
    traffic = _sql_list(TRAFFIC_SOURCES)
    domains = _sql_list(EMAIL_DOMAINS)
    con.execute(
        f"""create or replace temp table _sim_users as
        select u.id, fn.value as first_name, ln.value as last_name,
               lower(replace(fn.value || ln.value, ' ', '')) || '@' || {domains}[u.domain + 1]
                   as email,
               u.age::bigint as age, case u.gender when 0 then 'M' else 'F' end as gender,
               l.state,
               lpad(u.street_number::varchar, u.street_digits::int, '0') || ' ' || sn.value
                   || ' ' || sf.value
                   || case u.unit_kind when 1 then ' Apt. ' || u.unit_number
                                       when 2 then ' Suite ' || u.unit_number else '' end
                   as street_address,
               l.postal_code, l.city, l.country,
               l.latitude::double as latitude, l.longitude::double as longitude,
               {traffic}[u.traffic + 1] as traffic_source, u.created_at,
               'POINT(' || l.longitude || ' ' || l.latitude || ')' as user_geom
        from _sim_users_num u
        join _sim_locations l on l.idx = u.location
        join _sim_names fn on fn.kind = case u.gender when 0 then 'first_name_M'
                                                       else 'first_name_F' end
                          and fn.idx = u.first_name
        join _sim_names ln on ln.kind = 'last_name' and ln.idx = u.last_name
        join _sim_names sn on sn.kind = 'last_name' and sn.idx = u.street_name
        join _sim_names sf on sf.kind = 'street_suffix' and sf.idx = u.street_suffix"""
    )
    con.unregister("_sim_users_num")


# --------------------------------------------------------------------------- orders and items


@dataclass
class _Orders:
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


def _concat_orders(parts: list[_Orders]) -> _Orders:
    offsets = np.cumsum([0] + [len(p.order_id) for p in parts[:-1]])
    merged = {}
    for f in dataclasses.fields(_Orders):
        arrays = [getattr(p, f.name) for p in parts]
        if f.name == "item_order":
            arrays = [a + off for a, off in zip(arrays, offsets, strict=True)]
        merged[f.name] = np.concatenate(arrays)
    return _Orders(**merged)


def _make_orders(
    seed: int,
    day: dt.date | None,
    customer: np.ndarray,
    created_at: np.ndarray,
    first_order_id: int,
    first_item_id: int,
    not_before_us: int | None,
    world: _World,
) -> _Orders:
    """Status, timestamps, items and truth of orders already placed by `customer` at times."""
    cfg = world.config
    # ids as the generator numbers them: user by user for the history, by time for a day
    order = (
        np.lexsort((created_at, customer))
        if not_before_us is None
        else np.argsort(created_at, kind="stable")
    )
    customer, created_at = customer[order], created_at[order]
    n = len(customer)
    rng = _rng(seed, "order_status", day)
    status = _choice(rng, STATUS_WEIGHTS, n)
    shipped = created_at + (rng.random(n) * 3 * US_PER_DAY).astype(np.int64)
    delivered = shipped + (rng.random(n) * 5 * US_PER_DAY).astype(np.int64)
    returned = delivered + (rng.random(n) * 3 * US_PER_DAY).astype(np.int64)
    has_shipped = np.isin(status, (_STATUS_COMPLETE, _STATUS_RETURNED, _STATUS_SHIPPED))
    has_delivered = np.isin(status, (_STATUS_COMPLETE, _STATUS_RETURNED))
    rng = _rng(seed, "order_items", day)
    num_of_item = _choice(rng, cfg.items_weights, n) + 1
    item_order = np.repeat(np.arange(n), num_of_item)
    m = len(item_order)
    days_later = np.where(
        rng.random(m) < ITEM_SAME_DAY_SHARE, 0, rng.integers(1, ITEM_MAX_DAYS + 1, size=m)
    )
    jitter = rng.random(m) * ITEM_JITTER_HOURS * US_PER_HOUR
    jitter = np.where(rng.random(m) < ITEM_EARLIER_SHARE, -jitter, jitter).astype(np.int64)
    item_created = created_at[item_order] + days_later * US_PER_DAY + jitter
    if not_before_us is not None:
        item_created = np.maximum(item_created, not_before_us)
    month = _month_index(created_at)
    phase = (created_at >= _us(cfg.campaign_start)).astype(np.int64)
    product = bh.draw_products(
        _rng(seed, "products", day),
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
    return _Orders(
        order_id=np.arange(first_order_id, first_order_id + n, dtype=np.int64),
        user_id=world.user_id[customer],
        gender=world.latent.home_department[customer],
        created_at=created_at,
        status=status,
        shipped_at=np.where(has_shipped, shipped, -1),
        delivered_at=np.where(has_delivered, delivered, -1),
        returned_at=np.where(status == _STATUS_RETURNED, returned, -1),
        num_of_item=num_of_item,
        p_target=bh.order_target_probability(q, cfg.items_weights),
        item_id=np.arange(first_item_id, first_item_id + m, dtype=np.int64),
        item_order=item_order,
        item_product=product,
        item_created_at=item_created,
    )


def _stage_orders(con: duckdb.DuckDBPyConnection, o: _Orders, cat: bh.Catalogue) -> None:
    io = o.item_order
    ts = ("created_at", "shipped_at", "delivered_at", "returned_at")
    con.register(
        "_sim_orders_num",
        _arrow(
            {
                "order_id": o.order_id,
                "user_id": o.user_id,
                "status": o.status,
                "gender": o.gender,
                "created_at": o.created_at,
                "returned_at": o.returned_at,
                "shipped_at": o.shipped_at,
                "delivered_at": o.delivered_at,
                "num_of_item": o.num_of_item,
                "p_target": o.p_target,
            },
            timestamps=ts,
        ),
    )
    con.register(
        "_sim_items_num",
        _arrow(
            {
                "id": o.item_id,
                "order_id": o.order_id[io],
                "user_id": o.user_id[io],
                "product_id": cat.product_id[o.item_product],
                "status": o.status[io],
                "created_at": o.item_created_at,
                "shipped_at": o.shipped_at[io],
                "delivered_at": o.delivered_at[io],
                "returned_at": o.returned_at[io],
                "sale_price": cat.retail_price[o.item_product],
            },
            timestamps=ts,
        ),
    )
    statuses = _sql_list(STATUSES)
    con.execute(
        f"""create or replace temp table _sim_orders as
        select order_id, user_id, {statuses}[status + 1] as status,
               case gender when 0 then 'M' else 'F' end as gender,
               created_at, returned_at, shipped_at, delivered_at, num_of_item::bigint as num_of_item
        from _sim_orders_num"""
    )
    con.execute(
        """create or replace temp table _sim_truth_orders as
        select order_id, user_id, created_at, p_target from _sim_orders_num"""
    )
    con.execute(
        f"""create or replace temp table _sim_order_items as
        select id, order_id, user_id, product_id, id as inventory_item_id,
               {statuses}[status + 1] as status, created_at, shipped_at, delivered_at,
               returned_at, sale_price
        from _sim_items_num"""
    )
    con.unregister("_sim_orders_num")
    con.unregister("_sim_items_num")


# --------------------------------------------------------------------------- world state


@dataclass
class _World:
    """Catalogue, market and every customer's latent state, aligned by customer row."""

    config: SimulationConfig
    catalogue: bh.Catalogue
    market: bh.Market
    latent: bh.Latent
    user_id: np.ndarray
    signup_at: np.ndarray
    base_orders: np.ndarray
    order_rate: np.ndarray  # orders per day, for append_days


def _stage_customers(con: duckdb.DuckDBPyConnection, world: _World, rows: slice) -> None:
    """truth.customers rows for the customers in `rows` (favourites as brand strings)."""
    lat = world.latent
    cat = world.catalogue
    k = lat.favourite_groups.shape[1]
    fav = lat.favourite_groups[rows]
    con.register(
        "_sim_customers_num",
        pa.table(
            {
                "user_id": world.user_id[rows],
                "home_department": lat.home_department[rows],
                "loyalty": lat.loyalty[rows],
                "cross_department_share": lat.cross_share[rows],
                "price_tier": lat.price_tier[rows],
                "base_orders": world.base_orders[rows],
                "order_rate_per_day": world.order_rate[rows],
                "favourite_target_share": bh.favourite_target_share(cat, lat)[rows],
                # a variable-size list: thelook mode has no favourites (k = 0)
                "favourites": pa.ListArray.from_arrays(
                    pa.array(np.arange(len(fav) + 1, dtype=np.int64) * k, type=pa.int32()),
                    pa.array(fav.reshape(-1), type=pa.int64()),
                ),
            }
        ),
    )
    con.register("_sim_groups", pa.table({"brands": [list(cat.group_brand)]}))
    departments = _sql_list(bh.DEPARTMENTS)
    con.execute(
        f"""create or replace temp table _sim_truth_customers as
        select c.user_id, {departments}[c.home_department + 1] as home_department,
               c.loyalty, c.cross_department_share, (c.price_tier + 1)::int as price_tier,
               c.base_orders::int as base_orders, c.order_rate_per_day,
               list_transform(c.favourites, lambda g: b.brands[g + 1])::varchar[]
                   as favourite_brands,
               c.favourite_target_share
        from _sim_customers_num c, _sim_groups b"""
    )
    con.unregister("_sim_customers_num")
    con.unregister("_sim_groups")


def _load_world(con: duckdb.DuckDBPyConnection, config: SimulationConfig) -> _World:
    """Rebuild the world of an existing simulation from truth.customers."""
    cat = bh.load_catalogue(con, config.target_brands)
    cols = con.execute(
        f"""select c.user_id, case c.home_department when 'Men' then 0 else 1 end as home,
                   c.loyalty, c.cross_department_share, c.price_tier - 1 as tier,
                   c.base_orders, c.order_rate_per_day, u.created_at
            from {TRUTH_SCHEMA}.customers c join {RAW_SCHEMA}.users u on u.id = c.user_id
            order by c.user_id"""
    ).fetchnumpy()
    k = config.behaviour().favourite_brands
    favourites = np.zeros((len(cols["user_id"]), k), dtype=np.int64)
    if k:
        con.register(
            "_sim_groups",
            pa.table(
                {
                    "group_idx": np.arange(len(cat.group_brand)),
                    "brand": list(cat.group_brand),
                    "dept": [bh.DEPARTMENTS[d] for d in cat.group_department],
                }
            ),
        )
        fav = con.execute(
            f"""select g.group_idx from (
                  select user_id, home_department, unnest(favourite_brands) as brand,
                         generate_subscripts(favourite_brands, 1) as i
                  from {TRUTH_SCHEMA}.customers) f
                join _sim_groups g on g.brand = f.brand and g.dept = f.home_department
                order by f.user_id, f.i"""
        ).fetchnumpy()["group_idx"]
        con.unregister("_sim_groups")
        favourites = np.asarray(fav, dtype=np.int64).reshape(-1, k)
    latent = bh.Latent(
        home_department=np.asarray(cols["home"], dtype=np.int8),
        loyalty=np.asarray(cols["loyalty"], dtype=np.float64),
        cross_share=np.asarray(cols["cross_department_share"], dtype=np.float64),
        price_tier=np.asarray(cols["tier"], dtype=np.int8),
        favourite_groups=favourites,
    )
    return _World(
        config=config,
        catalogue=cat,
        market=bh.build_market(cat, config.behaviour()),
        latent=latent,
        user_id=np.asarray(cols["user_id"], dtype=np.int64),
        signup_at=np.asarray(cols["created_at"], dtype="datetime64[us]").astype(np.int64),
        base_orders=np.asarray(cols["base_orders"], dtype=np.int64),
        order_rate=np.asarray(cols["order_rate_per_day"], dtype=np.float64),
    )


# --------------------------------------------------------------------------- simulate


def simulate(con: duckdb.DuckDBPyConnection, config: SimulationConfig) -> SimulationResult:
    """Replace raw.* and truth.* with a freshly simulated world, in one transaction."""
    try:
        return _simulate(con, config)
    finally:
        _drop_staged(con)


def _simulate(con: duckdb.DuckDBPyConnection, config: SimulationConfig) -> SimulationResult:
    truth_rows = _stage_world(con, config)
    with transaction(con):
        clear_raw(con)
        writes = apply_raw_writes(con, {t: f"_sim_{t}" for t in TABLES}, source=SOURCE)
        con.execute(f"drop schema if exists {TRUTH_SCHEMA} cascade")
        con.execute(f"create schema {TRUTH_SCHEMA}")
        con.execute(f"create table {TRUTH_SCHEMA}.customers as select * from _sim_truth_customers")
        con.execute(
            f"create table {TRUTH_SCHEMA}.orders as select * from _sim_truth_orders order by order_id"
        )
        con.execute(
            f"""create table {TRUTH_SCHEMA}.simulation (
                  mode varchar, seed bigint, config json, start_date date, end_date date,
                  appended_days integer)"""
        )
        con.execute(
            f"insert into {TRUTH_SCHEMA}.simulation values (?, ?, ?, ?, ?, 0)",
            [config.mode, config.seed, config.to_json(), config.start, config.end],
        )
    return _result(con, writes, config, config.end, truth_rows)


def _stage_world(con: duckdb.DuckDBPyConnection, config: SimulationConfig) -> dict[str, int]:
    """Draw the world in numpy and stage it as temp tables; returns truth row counts.

    A function of its own so that the numpy arrays are freed before the write transaction.
    """
    lk = _register_lookups(con)
    cat = bh.load_catalogue(con, config.target_brands)
    start_us, now_us = _us(config.start), _us(config.end + dt.timedelta(days=1))
    n = config.users

    rng = _rng(config.seed, "signup")
    recent = rng.random(n) < RECENT_SIGNUP_SHARE
    window_start = np.where(
        recent, max(start_us, now_us - RECENT_SIGNUP_DAYS * US_PER_DAY), start_us
    )
    signup = np.sort(window_start + (rng.random(n) * (now_us - window_start)).astype(np.int64))
    users = _draw_users(config.seed, None, signup, 1, lk)
    latent = bh.draw_latent(_rng(config.seed, "latent"), users["gender"], cat, config.behaviour())

    rng = _rng(config.seed, "orders")
    base_orders = _choice(rng, config.orders_weights, n)
    customer = np.repeat(np.arange(n), base_orders)
    created = _seasonal_times(rng, signup[customer], now_us, config)
    tenure_days = (now_us - signup) / US_PER_DAY
    world = _World(
        config=config,
        catalogue=cat,
        market=bh.build_market(cat, config.behaviour()),
        latent=latent,
        user_id=users["id"],
        signup_at=signup,
        base_orders=base_orders,
        order_rate=base_orders / np.maximum(tenure_days, config.append_rate_floor_days),
    )
    orders = _make_orders(config.seed, None, customer, created, 1, 1, None, world)
    _stage_users(con, users)
    _stage_orders(con, orders, cat)
    _stage_customers(con, world, slice(None))
    _stage_catalogue(con)
    _stage_empty_optional(con)
    return {"customers": n, "orders": len(orders.order_id)}


def _seasonal_times(
    rng: np.random.Generator, lower_us: np.ndarray, now_us: int, config: SimulationConfig
) -> np.ndarray:
    """Times in [lower, now) with density proportional to the month's order weight."""
    days = np.arange(
        np.datetime64(config.start, "D"), np.datetime64(config.end, "D") + 1, dtype="datetime64[D]"
    )
    weight = config.month_weights[days.astype("datetime64[M]").astype(np.int64) % 12]
    bounds = np.append(days.astype("datetime64[us]").astype(np.int64), now_us).astype(np.float64)
    cum = np.append(0.0, np.cumsum(weight))
    low = np.interp(lower_us.astype(np.float64), bounds, cum)
    v = low + rng.random(len(lower_us)) * (cum[-1] - low)
    t = np.interp(v, cum, bounds).astype(np.int64)
    return np.asarray(np.clip(t, lower_us, now_us - 1), dtype=np.int64)


def _stage_catalogue(con: duckdb.DuckDBPyConnection) -> None:
    """raw.products and raw.distribution_centers from the shipped CSVs, typed as raw."""
    for name in ("products", "distribution_centers"):
        table = TABLES[name]
        file = bh.data_path(f"{name}.csv.gz")
        present = set(con.read_csv(file, header=True, all_varchar=True).columns)
        exprs = []
        for col in table.columns:
            if col.name == "distribution_center_geom":
                exprs.append(
                    "'POINT(' || longitude::double || ' ' || latitude::double || ')' as "
                    "distribution_center_geom"
                )
            elif col.name in present:
                exprs.append(f"{col.name}::{col.duckdb_type} as {col.name}")
            else:
                exprs.append(f"null::{col.duckdb_type} as {col.name}")
        con.execute(
            f"""create or replace temp table _sim_{name} as
                select {", ".join(exprs)} from read_csv(?, header = true, all_varchar = true)""",
            [file],
        )


def _stage_empty_optional(con: duckdb.DuckDBPyConnection) -> None:
    """The simulator makes no events or inventory_items; writing them empty keeps meta true."""
    for name in ("events", "inventory_items"):
        cols = ", ".join(f"null::{c.duckdb_type} as {c.name}" for c in TABLES[name].columns)
        con.execute(f"create or replace temp table _sim_{name} as select {cols} limit 0")


def _drop_staged(con: duckdb.DuckDBPyConnection) -> None:
    for (name,) in con.execute(
        "select table_name from duckdb_tables() where temporary and table_name like '\\_sim\\_%' escape '\\'"
    ).fetchall():
        con.execute(f"drop table if exists temp.{name}")


def _result(
    con: duckdb.DuckDBPyConnection,
    writes: list[Any],
    config: SimulationConfig,
    end: dt.date,
    truth_rows: dict[str, int],
) -> SimulationResult:
    rows = {f"{RAW_SCHEMA}.{w.table}": w.rows for w in writes}
    rows.update({f"{TRUTH_SCHEMA}.{k}": v for k, v in truth_rows.items()})
    partitions = [p for w in writes if w.table == "order_items" for p in w.partitions]
    return SimulationResult(
        rows=rows,
        first_partition=min(partitions) if partitions else None,
        last_partition=max(partitions) if partitions else None,
        end=end,
        config=config,
    )


# --------------------------------------------------------------------------- append_days


def append_days(con: duckdb.DuckDBPyConnection, days: int) -> SimulationResult:
    """Extend the simulated warehouse by `days` new days after its end date."""
    if days < 1:
        raise ValueError("days must be at least 1")
    try:
        return _append_days(con, days)
    finally:
        _drop_staged(con)


def _append_days(con: duckdb.DuckDBPyConnection, days: int) -> SimulationResult:
    config, end = _read_simulation(con)
    world = _load_world(con, config)
    lk = _register_lookups(con)
    first_new_day = end + dt.timedelta(days=1)
    not_before = _us(first_new_day)
    next_user, next_order, next_item = (
        _max_id(con, t, c) + 1
        for t, c in (("users", "id"), ("orders", "order_id"), ("order_items", "id"))
    )
    base_days = (config.end - config.start).days + 1
    signups_per_day = config.users * (1 - RECENT_SIGNUP_SHARE) / base_days
    month_factor = config.month_weights / config.month_weights.mean()
    first_customer = len(world.user_id)
    user_parts: list[dict[str, np.ndarray]] = []
    order_parts: list[_Orders] = []
    for offset in range(days):
        day = first_new_day + dt.timedelta(days=offset)
        day_us = _us(day)
        rng = _rng(config.seed, "append_signup", day)
        n_new = int(rng.poisson(signups_per_day))
        signup = np.sort(day_us + (rng.random(n_new) * US_PER_DAY).astype(np.int64))
        users = _draw_users(config.seed, day, signup, next_user, lk)
        next_user += n_new
        user_parts.append(users)
        latent = bh.draw_latent(
            _rng(config.seed, "append_latent", day),
            users["gender"],
            world.catalogue,
            config.behaviour(),
        )
        new_orders = _choice(
            _rng(config.seed, "append_base_orders", day), config.orders_weights, n_new
        )
        world.latent = bh.concat_latent([world.latent, latent])
        world.user_id = np.concatenate([world.user_id, users["id"]])
        world.signup_at = np.concatenate([world.signup_at, signup])
        world.base_orders = np.concatenate([world.base_orders, new_orders])
        world.order_rate = np.concatenate(
            [world.order_rate, new_orders / config.append_rate_floor_days]
        )
        # A customer is exposed for the part of the day after its signup.
        opens = np.maximum(world.signup_at, day_us)
        exposure = np.clip((day_us + US_PER_DAY - opens) / US_PER_DAY, 0.0, 1.0)
        rng = _rng(config.seed, "append_orders", day)
        month = (np.datetime64(day, "M").astype(np.int64)) % 12
        counts = rng.poisson(world.order_rate * exposure * month_factor[month])
        customer = np.repeat(np.arange(len(world.user_id)), counts)
        start = opens[customer]
        created = start + (rng.random(len(customer)) * (day_us + US_PER_DAY - start)).astype(
            np.int64
        )
        orders = _make_orders(
            config.seed, day, customer, created, next_order, next_item, not_before, world
        )
        next_order += len(orders.order_id)
        next_item += len(orders.item_id)
        order_parts.append(orders)

    new_end = end + dt.timedelta(days=days)
    all_users = {k: np.concatenate([u[k] for u in user_parts]) for k in user_parts[0]}
    orders = _concat_orders(order_parts)
    _stage_users(con, all_users)
    _stage_orders(con, orders, world.catalogue)
    _stage_customers(con, world, slice(first_customer, None))
    # Items dated after the new end land in partitions that may already hold rows (the
    # future-dated items of earlier writes): those rows are rewritten with them.
    pid = partition_id_sql("created_at")
    con.execute(
        f"""insert into _sim_order_items
            select * from {RAW_SCHEMA}.order_items
            where {pid} in (select distinct {pid} from _sim_order_items)"""
    )
    with transaction(con):
        writes = apply_raw_writes(
            con,
            {"users": "_sim_users", "orders": "_sim_orders", "order_items": "_sim_order_items"},
            source=SOURCE,
        )
        con.execute(f"insert into {TRUTH_SCHEMA}.customers select * from _sim_truth_customers")
        con.execute(f"insert into {TRUTH_SCHEMA}.orders select * from _sim_truth_orders")
        con.execute(
            f"update {TRUTH_SCHEMA}.simulation set end_date = ?, appended_days = appended_days + ?",
            [new_end, days],
        )
    truth_rows = {"customers": len(world.user_id) - first_customer, "orders": len(orders.order_id)}
    return _result(con, writes, config, new_end, truth_rows)


def _read_simulation(con: duckdb.DuckDBPyConnection) -> tuple[SimulationConfig, dt.date]:
    exists = first_row(
        con,
        "select count(*) from duckdb_tables() where schema_name = ? and table_name = 'simulation'",
        [TRUTH_SCHEMA],
    ) != (0,)
    rows = (
        con.execute(f"select config, end_date from {TRUTH_SCHEMA}.simulation").fetchall()
        if exists
        else []
    )
    if not rows:
        raise SimulationError(
            "this warehouse holds no simulation (truth.simulation is missing or empty): "
            "run simulate first"
        )
    return SimulationConfig.from_dict(json.loads(rows[0][0])), rows[0][1]


def _max_id(con: duckdb.DuckDBPyConnection, table: str, column: str) -> int:
    row = first_row(con, f"select coalesce(max({column}), 0) from {RAW_SCHEMA}.{table}")
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]


# --------------------------------------------------------------------------- helpers


def _arrow(columns: dict[str, np.ndarray], timestamps: tuple[str, ...]) -> pa.Table:
    """An arrow table of numpy columns; timestamp columns are epoch-us, negative = NULL."""
    arrays = {}
    for name, values in columns.items():
        if name in timestamps:
            arrays[name] = pa.array(values, type=pa.timestamp("us"), mask=values < 0)
        else:
            arrays[name] = pa.array(values)
    return pa.table(arrays)


def _sql_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"
