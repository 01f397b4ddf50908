"""The customer behaviour behind the simulator: catalogue, latent state, product draws, truth.

Kept apart from `thelook.simulator` (which handles time, ids, text columns and the
warehouse; thelook/README.md describes both) because this is the part whose probabilities
must be exact: the product drawn for an item depends only on the customer's latent state
and the order's month and campaign phase, and `target_item_probability` computes the chance of a target-brand item
from the very same tables the sampler draws from. Everything is vectorised over customers,
orders or items; loops run over the two departments or the 192 market buckets only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from thelook.settings import BehaviourSettings

DEPARTMENTS = ("Men", "Women")  # index 0 / 1; gender M shops Men, F shops Women
PRICE_TIERS = 4  # quartiles of retail_price within a department
MONTHS = 12
CAMPAIGN_PHASES = 2  # before / from campaign_start


def data_path(name: str) -> str:
    """A shipped data file of the thelook package."""
    return str(Path(__file__).resolve().parent / "data" / name)


@dataclass(frozen=True)
class Catalogue:
    """The shipped products, arranged for sampling.

    Products are sorted by (department, brand, id) so that the products of one
    (department, brand) "group" are a contiguous slice: a loyal draw picks a slice and
    an offset in it.
    """

    product_id: np.ndarray  # int64, sorted as described
    department: np.ndarray  # int8 index into DEPARTMENTS
    retail_price: np.ndarray  # float64
    category: np.ndarray  # int32 index into categories
    categories: tuple[str, ...]
    tier: np.ndarray  # int8 price quartile within the department
    is_target: np.ndarray  # bool
    group_start: np.ndarray  # int64 first product of each (department, brand) group
    group_size: np.ndarray  # int64
    group_department: np.ndarray  # int8
    group_brand: tuple[str, ...]
    group_is_target: np.ndarray  # bool (brand strings match target brands exactly)

    @property
    def product_group(self) -> np.ndarray:
        """The (department, brand) group of each product."""
        return np.repeat(np.arange(len(self.group_size)), self.group_size)

    @property
    def department_slices(self) -> list[slice]:
        bounds = np.searchsorted(self.department, np.arange(len(DEPARTMENTS) + 1))
        return [slice(int(bounds[d]), int(bounds[d + 1])) for d in range(len(DEPARTMENTS))]


def load_catalogue(con: duckdb.DuckDBPyConnection, target_brands: tuple[str, ...]) -> Catalogue:
    """Read products.csv.gz (brand strings untouched) and derive tiers and brand groups."""
    rows = con.execute(
        f"""
        with p as (
          -- all_varchar: numbers are cast here, brand strings stay byte for byte
          select id::bigint as id, brand, category, retail_price::double as retail_price,
                 case department when 'Men' then 0 else 1 end as dept
          from read_csv(?, header = true, all_varchar = true)
        )
        select id, dept, retail_price, category, brand,
               -- rank by (price, id) so that tiers do not depend on file order
               (floor({PRICE_TIERS} * (row_number() over (partition by dept
                   order by retail_price, id) - 1) / count(*) over (partition by dept)))::tinyint
                   as tier
        from p order by dept, brand, id
        """,
        [data_path("products.csv.gz")],
    ).fetchnumpy()
    department = np.asarray(rows["dept"], dtype=np.int8)
    brand = np.asarray(rows["brand"], dtype=object)
    categories, category = np.unique(
        np.asarray(rows["category"], dtype=object), return_inverse=True
    )
    # group boundaries: where (department, brand) changes along the sorted products
    change = np.ones(len(brand), dtype=bool)
    change[1:] = (department[1:] != department[:-1]) | (brand[1:] != brand[:-1])
    group_start = np.flatnonzero(change).astype(np.int64)
    group_size = np.diff(np.append(group_start, len(brand))).astype(np.int64)
    # A target is a brand string exactly as shipped; dbt labels by the brand as staging
    # cleans it. On the shipped catalogue both mark the same products:
    # tests/thelook/test_dbt_agreement.py holds them together.
    targets = set(target_brands)
    group_brand = tuple(str(b) for b in brand[group_start])
    group_is_target = np.array([b in targets for b in group_brand], dtype=bool)
    return Catalogue(
        product_id=np.asarray(rows["id"], dtype=np.int64),
        department=department,
        retail_price=np.asarray(rows["retail_price"], dtype=np.float64),
        category=category.astype(np.int32),
        categories=tuple(str(c) for c in categories),
        tier=np.asarray(rows["tier"], dtype=np.int8),
        is_target=np.repeat(group_is_target, group_size),
        group_start=group_start,
        group_size=group_size,
        group_department=department[group_start],
        group_brand=group_brand,
        group_is_target=group_is_target,
    )


@dataclass(frozen=True)
class Latent:
    """Per-customer latent state (rows aligned with the customers they were drawn for)."""

    home_department: np.ndarray  # int8
    loyalty: np.ndarray  # float64 in [0, 1]
    cross_share: np.ndarray  # float64: probability a non-loyal item is from the other dept
    price_tier: np.ndarray  # int8
    favourite_groups: np.ndarray  # int64 (n, favourite_brands) group indices

    def __len__(self) -> int:
        return len(self.loyalty)


def concat_latent(parts: list[Latent]) -> Latent:
    return Latent(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in Latent.__dataclass_fields__)
    )


def draw_latent(
    rng: np.random.Generator, gender: np.ndarray, cat: Catalogue, b: BehaviourSettings
) -> Latent:
    """Draw each customer's latent state; `gender` is 0 (M) / 1 (F), which is the home dept."""
    n = len(gender)
    home = gender.astype(np.int8)
    if not b.loyal:
        return Latent(
            home_department=home,
            loyalty=np.zeros(n),
            cross_share=np.zeros(n),
            price_tier=np.zeros(n, dtype=np.int8),
            favourite_groups=np.zeros((n, 0), dtype=np.int64),
        )
    loyalty = rng.beta(b.loyalty_alpha, b.loyalty_beta, size=n)
    crosses = rng.random(n) < b.cross_department_customer_share
    cross_share = np.where(crosses, b.cross_department_item_share, 0.0)
    price_tier = rng.integers(0, PRICE_TIERS, size=n).astype(np.int8)
    # Favourites are drawn with replacement by popularity (catalogue breadth of the brand
    # in the department, to a power); a repeated brand is simply doubly favoured.
    u = rng.random((n, b.favourite_brands))
    favourites = np.empty((n, b.favourite_brands), dtype=np.int64)
    for d in range(len(DEPARTMENTS)):
        groups = np.flatnonzero(cat.group_department == d)
        weight = brand_popularity(cat, b)[groups]
        cdf = np.cumsum(weight) / weight.sum()
        rows = home == d
        pick = np.minimum(np.searchsorted(cdf, u[rows], side="right"), len(groups) - 1)
        favourites[rows] = groups[pick]
    return Latent(home, loyalty, cross_share, price_tier, favourites)


def brand_popularity(cat: Catalogue, b: BehaviourSettings) -> np.ndarray:
    """Each group's weight as a favourite, relative to its department's other groups."""
    return np.asarray(cat.group_size.astype(np.float64) ** b.brand_popularity_exponent)


@dataclass(frozen=True)
class Market:
    """Product distributions of non-loyal draws, one per bucket (dept, tier, month, phase).

    All bucket CDFs live in one array, bucket k's values being k + its CDF, so a single
    `searchsorted` samples every item whatever its bucket.
    """

    cdf: np.ndarray  # float64, concatenated shifted CDFs
    product_at: np.ndarray  # int64 catalogue index of each cdf position
    target_share: np.ndarray  # float64 (buckets,): P(target brand | bucket)
    probability: np.ndarray  # float64 P(product at position | its bucket): the CDF's steps
    bucket_start: np.ndarray  # int64 first position of each bucket


def bucket(dept: np.ndarray, tier: np.ndarray, month: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Bucket index of (department, price tier, month 0-11, campaign phase 0/1)."""
    index = ((dept.astype(np.int64) * PRICE_TIERS + tier) * MONTHS + month) * CAMPAIGN_PHASES
    return np.asarray(index + phase, dtype=np.int64)


def build_market(cat: Catalogue, b: BehaviourSettings) -> Market:
    winter = np.isin(np.array(cat.categories, dtype=object), list(b.winter_categories))
    summer = np.isin(np.array(cat.categories, dtype=object), list(b.summer_categories))
    cdfs: list[np.ndarray] = []
    positions: list[np.ndarray] = []
    shares: list[float] = []
    probabilities: list[np.ndarray] = []
    for d, dept_slice in enumerate(cat.department_slices):
        idx = np.arange(dept_slice.start, dept_slice.stop, dtype=np.int64)
        for tier in range(PRICE_TIERS):
            tier_w = np.where(cat.tier[idx] == tier, b.price_tier_affinity, 1.0)
            for month in range(MONTHS):
                season_w = np.ones(len(idx))
                if month + 1 in b.winter_months:
                    season_w[winter[cat.category[idx]]] = b.seasonal_category_factor
                if month + 1 in b.summer_months:
                    season_w[summer[cat.category[idx]]] = b.seasonal_category_factor
                for phase in range(CAMPAIGN_PHASES):
                    w = tier_w * season_w
                    if phase:
                        w = np.where(cat.is_target[idx], w * b.campaign_uplift, w)
                    k = int(bucket(np.array(d), np.array(tier), np.array(month), np.array(phase)))
                    assert k == len(cdfs)  # buckets are built in index order
                    cdf = np.cumsum(w) / w.sum()
                    cdf[-1] = 1.0
                    cdfs.append(k + cdf)
                    positions.append(idx)
                    shares.append(float(w[cat.is_target[idx]].sum() / w.sum()))
                    probabilities.append(w / w.sum())
    sizes = np.array([len(c) for c in cdfs], dtype=np.int64)
    return Market(
        np.concatenate(cdfs),
        np.concatenate(positions),
        np.array(shares),
        np.concatenate(probabilities),
        np.cumsum(sizes) - sizes,
    )


def order_buckets(
    latent: Latent, customer: np.ndarray, month: np.ndarray, phase: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Market buckets of the home and the other department for orders of `customer` rows."""
    home = latent.home_department[customer]
    tier = latent.price_tier[customer]
    return bucket(home, tier, month, phase), bucket(1 - home, tier, month, phase)


def draw_products(
    rng: np.random.Generator,
    cat: Catalogue,
    market: Market,
    latent: Latent,
    customer: np.ndarray,
    month: np.ndarray,
    phase: np.ndarray,
) -> np.ndarray:
    """Catalogue index of each item, i.i.d. given (customer state, order month, phase)."""
    n = len(customer)
    u_loyal, u_slot, u_dept, u_product = rng.random((4, n))
    home_bucket, other_bucket = order_buckets(latent, customer, month, phase)
    chosen_bucket = np.where(u_dept < latent.cross_share[customer], other_bucket, home_bucket)
    pos = np.searchsorted(market.cdf, chosen_bucket + u_product, side="right")
    product = market.product_at[np.minimum(pos, len(market.cdf) - 1)]
    k = latent.favourite_groups.shape[1]
    if k:
        loyal = u_loyal < latent.loyalty[customer]
        slot = np.minimum((u_slot[loyal] * k).astype(np.int64), k - 1)
        group = latent.favourite_groups[customer[loyal], slot]
        offset = np.minimum(
            (u_product[loyal] * cat.group_size[group]).astype(np.int64), cat.group_size[group] - 1
        )
        product[loyal] = cat.group_start[group] + offset
    return np.asarray(product, dtype=np.int64)


def item_probability(
    cat: Catalogue,
    market: Market,
    latent: Latent,
    customer: np.ndarray,
    month: np.ndarray,
    phase: np.ndarray,
    product: np.ndarray,
) -> np.ndarray:
    """P(an item of the order is catalogue product `product`), exactly as `draw_products` samples.

    The likelihood of an observed item: a loyal draw takes a uniform slot, then a uniform
    product of that favourite's group; a market draw takes the home or the other
    department's bucket, then a product by the bucket's weights.
    """
    home = latent.home_department[customer]
    in_home = cat.department[product] == home
    home_bucket, other_bucket = order_buckets(latent, customer, month, phase)
    chosen = np.where(in_home, home_bucket, other_bucket)
    # a bucket's positions are its department's products in catalogue order
    position = (
        market.bucket_start[chosen] + product - market.product_at[market.bucket_start[chosen]]
    )
    cross = latent.cross_share[customer]
    market_p = np.where(in_home, 1 - cross, cross) * market.probability[position]
    k = latent.favourite_groups.shape[1]
    if not k:
        return np.asarray(market_p, dtype=np.float64)
    group = cat.product_group[product]
    slots = (latent.favourite_groups[customer] == group[:, None]).sum(axis=1)
    loyal_p = slots / k / cat.group_size[group]
    loyalty = latent.loyalty[customer]
    return np.asarray(loyalty * loyal_p + (1 - loyalty) * market_p, dtype=np.float64)


def favourite_target_share(cat: Catalogue, latent: Latent) -> np.ndarray:
    """Share of each customer's favourite slots that are target brands (0 without any)."""
    if latent.favourite_groups.shape[1] == 0:
        return np.zeros(len(latent))
    return np.asarray(cat.group_is_target[latent.favourite_groups].mean(axis=1), dtype=np.float64)


def target_item_probability(
    cat: Catalogue,
    market: Market,
    latent: Latent,
    customer: np.ndarray,
    month: np.ndarray,
    phase: np.ndarray,
) -> np.ndarray:
    """P(one item of the order is a target brand), exactly as `draw_products` samples."""
    home_bucket, other_bucket = order_buckets(latent, customer, month, phase)
    cross = latent.cross_share[customer]
    loyalty = latent.loyalty[customer]
    market_share = (1 - cross) * market.target_share[home_bucket] + cross * market.target_share[
        other_bucket
    ]
    loyal_share = favourite_target_share(cat, latent)[customer]
    return np.asarray(loyalty * loyal_share + (1 - loyalty) * market_share, dtype=np.float64)


def order_target_probability(
    q: np.ndarray, items_per_order_weights: tuple[float, ...]
) -> np.ndarray:
    """P(at least one target item), marginalised over the unknown number of items."""
    w = np.asarray(items_per_order_weights, dtype=np.float64)
    w = w / w.sum()
    none = np.zeros_like(q)
    for n_items, p_n in enumerate(w, start=1):
        none += p_n * (1 - q) ** n_items
    return 1 - none
