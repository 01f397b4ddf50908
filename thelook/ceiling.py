"""The observable ceiling: P(an order holds a target-brand item | what the warehouse shows).

`truth.orders.p_target` is the oracle's probability: it knows each customer's latent state.
A model sees only the warehouse, and the best any model can do from it is the Bayes
posterior predictive computed here: the gap between the oracle and this ceiling is
information no model can have; the gap between the ceiling and a model is what modelling
can still win.

Kept whole: the derivation below and the code follow each other step by step (observed
items, grouped favourites, quadrature); reading the warehouse is a small part of it.

**What is observed.** For an order to predict: the customer's gender (the home
department), the order's time (its month and campaign phase) and the customer's earlier
items, exactly as dbt's `training_examples` sees them: the non-cancelled items of the
customer's purchases ordered before it by (order time, order_id), the order time being
`orders.created_at` or its earliest item's (`include_cancelled=True` adds the earlier
orders' cancelled items: the warehouse shows them, the features do not). Each earlier
item shows its product (so its (department, brand) group and price tier) and its order's
month and phase. Nothing else the warehouse holds depends on the latent state: order
counts and times, statuses, item counts, ages and places are drawn independently of it.

**Derivation.** The latent state is (loyalty l, cross-department flag c, price tier t,
favourites f: K = `favourite_brands` slots drawn i.i.d. from the home department's groups,
group g with prior pi_g proportional to `behaviour.brand_popularity`). Items are i.i.d.
given (state, order month, phase); `draw_products` gives an observed product of group g
the probability (`behaviour.item_probability`)

    P(x_i | state) = l * n_g / (K * size_g) + (1 - l) * M_i(c, t),

with n_g the number of slots holding g (0 for the other department's groups) and M_i the
market draw's probability of the product in its bucket (department, t, month, phase),
scaled by the cross flag's department share. The order's probability (`order_probability`,
the truth's own formula) depends on the favourites only through the number s of target
slots: p = 1 - sum_n P(n items) (1 - q)^n, q = l * s / K + (1 - l) * market target share.
So the favourites matter only through the multiplicities n_1..n_D of the D distinct home
groups in the history, and through s. Merge every unobserved group into "unobserved
target" (mass pi_T) and "unobserved other" (pi_N): slots being i.i.d., the counts
(n_1..n_D, a, b) are multinomial(K; pi_1..pi_D, pi_T, pi_N) exactly, and
s = a + sum of the n_j of target groups. For each (l, c, t) the likelihood-weighted prior
of s is then a sum over the counts that add up to K and give s,

    W(s) = K! sum prod_j [pi_j^n_j / n_j! * F_j(n_j)] * pi_T^a / a! * pi_N^b / b!,
    F_j(n) = prod over the history's items of group j of P(x_i | n_j = n),

times the other department's items' likelihood (free of f). It is computed by a dynamic
programme over the observed groups whose state is (slots used, target slots used), so the
cost grows linearly with the history, not with the number of favourite multisets.
Loyalty is integrated by Gauss-Jacobi quadrature for the Beta(alpha, beta) weight: for a
given discrete configuration the joint of the history and the label is a polynomial in l
of degree m + (most items per order) for m earlier items, so L nodes are exact (to
rounding) when 2L - 1 reaches that degree. Each chunk of orders takes the fewest nodes
exact for its longest history, at most `loyalty_nodes` (32: exact up to 59 earlier items
at 4 items per order, a close approximation beyond). The posterior is the oracle's
function averaged over the hidden configurations (l node, c, t, s) with weight prior x W;
`true_state_probability` evaluates the same function at the true state.

Vectorised over orders in chunks; Python loops run over the slots and the rank of a group
within its history only. Every factor is carried as a log scale per (order,
configuration) times values of at most 1, so histories of thousands of items stay finite.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from math import factorial

import duckdb
import numpy as np
import pandas as pd
from scipy.special import roots_jacobi  # scipy comes with scikit-learn

from thelook import behaviour as bh
from thelook.schema import RAW_SCHEMA
from thelook.settings import BehaviourSettings, SimulationSettings
from thelook.simulator.staging import load_world
from thelook.simulator.truth import read_simulation

DEFAULT_LOYALTY_NODES = 32
CONTEXTS = len(bh.DEPARTMENTS) * bh.MONTHS * bh.CAMPAIGN_PHASES
# Chunk sizes bound memory: items x configurations x (K + 1) doubles per chunk.
CHUNK_ORDERS = 1024
CHUNK_ITEMS = 4096


@dataclass(frozen=True)
class Shop:
    """How a simulated shop draws items: what the posterior and the oracle both need."""

    behaviour: BehaviourSettings
    items_per_order_weights: tuple[float, ...]
    campaign_start: np.datetime64
    catalogue: bh.Catalogue
    market: bh.Market

    @classmethod
    def of(
        cls, settings: SimulationSettings, catalogue: bh.Catalogue, market: bh.Market | None = None
    ) -> Shop:
        behaviour = settings.behaviour_in_force
        return cls(
            behaviour=behaviour,
            items_per_order_weights=settings.items_per_order_in_force,
            campaign_start=np.datetime64(settings.campaign_start, "us"),
            catalogue=catalogue,
            market=market if market is not None else bh.build_market(catalogue, behaviour),
        )


def read_shop(con: duckdb.DuckDBPyConnection) -> Shop:
    """The shop stored in truth.simulation; `SimulationError` when the warehouse has none."""
    stored = read_simulation(con)
    return Shop.of(stored.settings, bh.load_catalogue(con, stored.target_brands))


@dataclass(frozen=True)
class Histories:
    """Orders to predict and what the warehouse shows before each: the posterior's input.

    Item arrays are sorted by `item_order`, the row of the order they precede.
    """

    order_id: np.ndarray  # int64
    customer_id: np.ndarray  # int64
    home: np.ndarray  # int8 home department (from gender)
    month: np.ndarray  # int64 0-11 of the order's time
    phase: np.ndarray  # int64 campaign phase of the order's time
    item_order: np.ndarray  # int64
    item_product: np.ndarray  # int64 catalogue index
    item_month: np.ndarray  # int64 month of the earlier item's order
    item_phase: np.ndarray  # int64 campaign phase of the earlier item's order

    def __len__(self) -> int:
        return len(self.order_id)


def read_histories(
    con: duckdb.DuckDBPyConnection,
    shop: Shop,
    order_ids: Sequence[int] | np.ndarray | None = None,
    *,
    include_cancelled: bool = False,
) -> Histories:
    """The orders `order_ids` (every order when None, by id) and their earlier items, from raw.

    Orders and their customers as dbt's int_orders defines them: the items' customer, the
    order's created_at or its earliest item's. Rows follow `order_ids`.
    """
    if order_ids is None:
        ids = con.execute(
            f"select distinct order_id from {RAW_SCHEMA}.order_items "
            "where order_id is not null order by order_id"
        ).fetchnumpy()["order_id"]
    else:
        ids = np.asarray(order_ids, dtype=np.int64)
    con.register("_ceiling_requested", pd.DataFrame({"row": np.arange(len(ids)), "order_id": ids}))
    try:
        orders_sql = f"""
            with items as (
              select order_id, min(user_id) as customer_id, min(created_at) as first_item_at
              from {RAW_SCHEMA}.order_items where order_id is not null group by order_id
            )
            select items.order_id, items.customer_id,
                   coalesce(o.created_at, items.first_item_at) as ordered_at
            from items left join {RAW_SCHEMA}.orders o using (order_id)
        """
        start = shop.campaign_start.astype(object)
        orders = con.execute(
            f"""with orders as ({orders_sql})
                select r.row, o.customer_id, u.gender,
                       month(o.ordered_at) - 1 as month, (o.ordered_at >= ?)::int as phase
                from _ceiling_requested r
                left join orders o using (order_id)
                left join {RAW_SCHEMA}.users u on u.id = o.customer_id
                order by r.row""",
            [start],
        ).fetchnumpy()
        items = con.execute(
            f"""with orders as ({orders_sql}),
                requested as (
                  select r.row, o.* from _ceiling_requested r join orders o using (order_id)
                )
                select r.row, i.product_id, month(o.ordered_at) - 1 as month,
                       (o.ordered_at >= ?)::int as phase
                from requested r
                join orders o on o.customer_id = r.customer_id
                  and (o.ordered_at < r.ordered_at
                       or (o.ordered_at = r.ordered_at and o.order_id < r.order_id))
                join {RAW_SCHEMA}.order_items i on i.order_id = o.order_id
                where ? or coalesce(nullif(nullif(trim(i.status), ''), 'null'), '') <> 'Cancelled'
                order by r.row, o.ordered_at, o.order_id, i.created_at, i.id""",
            [start, include_cancelled],
        ).fetchnumpy()
    finally:
        con.unregister("_ceiling_requested")
    missing = pd.isna(pd.Series(orders["customer_id"])).to_numpy()
    if missing.any():
        raise ValueError(f"orders not in {RAW_SCHEMA}.order_items: {ids[missing][:5].tolist()}")
    gender = pd.Series(orders["gender"], dtype=object).str.strip().str.upper()
    if not gender.isin(["M", "F"]).all():
        bad = ids[~gender.isin(["M", "F"]).to_numpy()][:5].tolist()
        raise ValueError(f"customers of orders {bad} have no gender M / F: no home department")
    return Histories(
        order_id=ids,
        customer_id=np.asarray(orders["customer_id"], dtype=np.int64),
        home=np.where(gender == "M", 0, 1).astype(np.int8),
        month=np.asarray(orders["month"], dtype=np.int64),
        phase=np.asarray(orders["phase"], dtype=np.int64),
        item_order=np.asarray(items["row"], dtype=np.int64),
        item_product=_catalogue_index(shop.catalogue, np.asarray(items["product_id"])),
        item_month=np.asarray(items["month"], dtype=np.int64),
        item_phase=np.asarray(items["phase"], dtype=np.int64),
    )


def _catalogue_index(cat: bh.Catalogue, product_id: np.ndarray) -> np.ndarray:
    by_id = np.argsort(cat.product_id)
    pos = np.minimum(np.searchsorted(cat.product_id, product_id, sorter=by_id), len(by_id) - 1)
    index = by_id[pos]
    unknown = cat.product_id[index] != product_id
    if unknown.any():
        raise ValueError(f"products not in the catalogue: {np.unique(product_id[unknown])[:5]}")
    return np.asarray(index, dtype=np.int64)


# --------------------------------------------------------------------------- the one function


def order_probability(
    shop: Shop, latent: bh.Latent, customer: np.ndarray, month: np.ndarray, phase: np.ndarray
) -> np.ndarray:
    """P(an order holds a target item) for `customer` rows of `latent`: truth's formula.

    The oracle evaluates it at the true state, the posterior at every hidden configuration.
    """
    q = bh.target_item_probability(shop.catalogue, shop.market, latent, customer, month, phase)
    return bh.order_target_probability(q, shop.items_per_order_weights)


def true_state_probability(
    con: duckdb.DuckDBPyConnection, order_ids: Sequence[int] | np.ndarray | None = None
) -> pd.Series:
    """`order_probability` at each customer's true latent state (truth.customers).

    Reproduces truth.orders.p_target: the check that the posterior's building blocks are
    the simulator's.
    """
    stored = read_simulation(con)
    world = load_world(con, stored.settings, stored.target_brands)
    shop = Shop.of(stored.settings, world.catalogue, world.market)
    hist = read_histories(con, shop, order_ids)
    customer = np.searchsorted(world.user_id, hist.customer_id)  # load_world sorts by user_id
    p = order_probability(shop, world.latent, customer, hist.month, hist.phase)
    return pd.Series(p, index=pd.Index(hist.order_id, name="order_id"), name="p_true_state")


# --------------------------------------------------------------------------- the posterior


def observable_posterior(
    con: duckdb.DuckDBPyConnection,
    order_ids: Sequence[int] | np.ndarray | None = None,
    *,
    include_cancelled: bool = False,
    loyalty_nodes: int = DEFAULT_LOYALTY_NODES,
) -> pd.Series:
    """P(order holds a target item | the warehouse before it), per order of `order_ids`.

    Reads raw.* and truth.simulation (the settings and target brands, never the latent
    state); raises `SimulationError` when the warehouse holds no simulation.
    """
    shop = read_shop(con)
    hist = read_histories(con, shop, order_ids, include_cancelled=include_cancelled)
    p = posterior(shop, hist, loyalty_nodes=loyalty_nodes)
    return pd.Series(p, index=pd.Index(hist.order_id, name="order_id"), name="p_observable")


@dataclass(frozen=True)
class HiddenGrid:
    """The hidden configurations but the favourites: (loyalty node, cross flag, tier)."""

    loyalty: np.ndarray  # float64 (configurations,)
    cross_share: np.ndarray  # float64
    tier: np.ndarray  # int8
    cross_tier: np.ndarray  # int64 index of (c, t): the market part depends on nothing else
    prior: np.ndarray  # float64, sums to 1

    def __len__(self) -> int:
        return len(self.loyalty)


def hidden_grid(b: BehaviourSettings, loyalty_nodes: int = DEFAULT_LOYALTY_NODES) -> HiddenGrid:
    """Gauss-Jacobi nodes for Beta(alpha, beta) loyalty x both cross flags x every tier."""
    # roots_jacobi's weight (1 - x)^a (1 + x)^b on [-1, 1]; loyalty = (1 + x) / 2
    x, w = roots_jacobi(loyalty_nodes, b.loyalty_beta - 1, b.loyalty_alpha - 1)
    cross_prior = np.array(
        [1 - b.cross_department_customer_share, b.cross_department_customer_share]
    )
    node, cross, tier = np.meshgrid(
        np.arange(loyalty_nodes), np.arange(2), np.arange(bh.PRICE_TIERS), indexing="ij"
    )
    node, cross, tier = node.ravel(), cross.ravel(), tier.ravel()
    return HiddenGrid(
        loyalty=(1 + x[node]) / 2,
        cross_share=np.where(cross == 1, b.cross_department_item_share, 0.0),
        tier=tier.astype(np.int8),
        cross_tier=cross * bh.PRICE_TIERS + tier,
        prior=w[node] / w.sum() * cross_prior[cross] / bh.PRICE_TIERS,
    )


def posterior(
    shop: Shop, hist: Histories, *, loyalty_nodes: int = DEFAULT_LOYALTY_NODES
) -> np.ndarray:
    """The posterior predictive of each order of `hist` (the module docstring derives it).

    Each chunk of orders takes the fewest loyalty nodes that are exact for its longest
    history, at most `loyalty_nodes`: exact answers do not depend on the number of nodes,
    so this changes nothing but the time. Orders are taken shortest history first to
    keep chunks alike.
    """
    b = shop.behaviour
    if not b.loyal:
        # no favourites, loyalty, cross flag or tier: the state is the home department
        latent = bh.draw_latent(np.random.default_rng(0), hist.home, shop.catalogue, b)
        return order_probability(shop, latent, np.arange(len(hist)), hist.month, hist.phase)
    length = np.bincount(hist.item_order, minlength=len(hist))
    by_length = np.argsort(length, kind="stable")
    hist = _reordered(hist, by_length)
    length = length[by_length]
    context = (
        hist.home.astype(np.int64) * bh.MONTHS + hist.month
    ) * bh.CAMPAIGN_PHASES + hist.phase
    most_items = len(shop.items_per_order_weights)
    tables: dict[int, tuple[HiddenGrid, np.ndarray]] = {}
    out = np.empty(len(hist))
    for orders, items in _chunks(hist):
        nodes = min(loyalty_nodes, exact_nodes(int(length[orders.stop - 1]), most_items))
        if nodes not in tables:
            grid = hidden_grid(b, nodes)
            tables[nodes] = grid, _predictive_table(shop, grid)
        grid, table = tables[nodes]
        weight = _configuration_weights(shop, grid, hist, orders, items)
        predictive = table[context[orders]]
        out[orders] = (weight * predictive).sum(axis=(1, 2)) / weight.sum(axis=(1, 2))
    result = np.empty_like(out)
    result[by_length] = out
    return result


def exact_nodes(history_items: int, most_items_per_order: int) -> int:
    """Gauss nodes that integrate the posterior's polynomials in loyalty exactly.

    Numerator degree history_items + most_items_per_order; L nodes are exact to 2L - 1.
    """
    return (history_items + most_items_per_order + 2) // 2


def _reordered(hist: Histories, order: np.ndarray) -> Histories:
    """`hist` with its orders in `order`, items following their orders."""
    new_row = np.empty(len(order), dtype=np.int64)
    new_row[order] = np.arange(len(order))
    item_row = new_row[hist.item_order]
    items = np.argsort(item_row, kind="stable")
    return Histories(
        order_id=hist.order_id[order],
        customer_id=hist.customer_id[order],
        home=hist.home[order],
        month=hist.month[order],
        phase=hist.phase[order],
        item_order=item_row[items],
        item_product=hist.item_product[items],
        item_month=hist.item_month[items],
        item_phase=hist.item_phase[items],
    )


def _predictive_table(shop: Shop, grid: HiddenGrid) -> np.ndarray:
    """`order_probability` of every (context, configuration, target slots s): (48, C, K+1).

    A configuration with s target slots is any favourite tuple with s target groups: one
    representative target and one other group of the home department serve (when a
    department lacks one kind, those s have prior weight 0).
    """
    cat, k = shop.catalogue, shop.behaviour.favourite_brands
    n_dept, n_conf = len(bh.DEPARTMENTS), len(grid)
    target_rep = np.empty(n_dept, dtype=np.int64)
    other_rep = np.empty(n_dept, dtype=np.int64)
    for d in range(n_dept):
        groups = np.flatnonzero(cat.group_department == d)
        targets = groups[cat.group_is_target[groups]]
        others = groups[~cat.group_is_target[groups]]
        target_rep[d] = targets[0] if len(targets) else groups[0]
        other_rep[d] = others[0] if len(others) else groups[0]
    dept, conf, slots = (
        a.ravel()
        for a in np.meshgrid(np.arange(n_dept), np.arange(n_conf), np.arange(k + 1), indexing="ij")
    )
    latent = bh.Latent(
        home_department=dept.astype(np.int8),
        loyalty=grid.loyalty[conf],
        cross_share=grid.cross_share[conf],
        price_tier=grid.tier[conf],
        favourite_groups=np.where(
            np.arange(k)[None, :] < slots[:, None],
            target_rep[dept][:, None],
            other_rep[dept][:, None],
        ),
    )
    # rows (dept, month, phase) x (conf, s): latent row = dept * n_conf * (k+1) + conf_s
    per_dept = n_conf * (k + 1)
    ctx_dept, month, phase, conf_s = (
        a.ravel()
        for a in np.meshgrid(
            np.arange(n_dept),
            np.arange(bh.MONTHS),
            np.arange(bh.CAMPAIGN_PHASES),
            np.arange(per_dept),
            indexing="ij",
        )
    )
    p = order_probability(shop, latent, ctx_dept * per_dept + conf_s, month, phase)
    return p.reshape(CONTEXTS, n_conf, k + 1)


def _chunks(hist: Histories) -> Iterator[tuple[slice, slice]]:
    """(orders, their items) slices of at most CHUNK_ORDERS orders and about CHUNK_ITEMS items."""
    bounds = np.searchsorted(hist.item_order, np.arange(len(hist) + 1))
    start = 0
    while start < len(hist):
        stop = int(np.searchsorted(bounds, bounds[start] + CHUNK_ITEMS, side="right")) - 1
        stop = min(max(stop, start + 1), start + CHUNK_ORDERS, len(hist))
        yield slice(start, stop), slice(int(bounds[start]), int(bounds[stop]))
        start = stop


def _configuration_weights(
    shop: Shop, grid: HiddenGrid, hist: Histories, orders: slice, items: slice
) -> np.ndarray:
    """Prior x likelihood of each (order, configuration, target slots s), up to a factor
    per order: (orders, C, K+1)."""
    cat, k = shop.catalogue, shop.behaviour.favourite_brands
    n_orders = orders.stop - orders.start
    row = hist.item_order[items] - orders.start
    product = hist.item_product[items]
    group = cat.product_group[product]
    home = hist.home[orders]
    in_home = cat.department[product] == home[row]

    # log P(item | l, c, t, n slots hold its group): (items, C, K+1)
    market = _market_probability(shop, grid, home[row], hist, items, product)
    per_slot = np.where(in_home, 1.0 / (k * cat.group_size[group]), 0.0)
    slots = np.arange(k + 1)
    loyalty = grid.loyalty[None, :, None]
    with np.errstate(divide="ignore"):
        log_p = np.log(
            loyalty * slots[None, None, :] * per_slot[:, None, None]
            + (1 - loyalty) * market[:, :, None]
        )

    # Long histories underflow: every factor is kept as values of at most 1 times a log
    # scale per (order, configuration); the scales meet only at the end. The other
    # department's items, which no favourite explains, are scale only.
    log_scale = np.zeros((n_orders, len(grid)))
    np.add.at(log_scale, row[~in_home], log_p[~in_home, :, 0])

    # the home department's items: one factor F_j(n) per (order, distinct group j)
    home_items = np.flatnonzero(in_home)
    by_group = home_items[np.lexsort((group[home_items], row[home_items]))]
    new_group = np.ones(len(by_group), dtype=bool)
    new_group[1:] = (row[by_group][1:] != row[by_group][:-1]) | (
        group[by_group][1:] != group[by_group][:-1]
    )
    starts = np.flatnonzero(new_group)
    seen = _Seen(row[by_group][starts], group[by_group][starts])
    log_factor = (
        np.add.reduceat(log_p[by_group], starts, axis=0)
        if len(starts)
        else np.zeros((0, len(grid), k + 1))
    )
    factor_scale = _finite(log_factor.max(axis=2))
    np.add.at(log_scale, seen.row, factor_scale)
    factor = np.exp(log_factor - factor_scale[:, :, None])

    weight = _sum_over_favourites(shop, seen, factor, home, log_scale)
    scale = np.exp(log_scale - _finite(log_scale.max(axis=1, keepdims=True)))
    return np.asarray(weight * (scale * grid.prior)[:, :, None], dtype=np.float64)


@dataclass(frozen=True)
class _Seen:
    """The distinct home groups of each history, sorted by (order row, group)."""

    row: np.ndarray
    group: np.ndarray

    @property
    def rank(self) -> np.ndarray:
        """Position of each group within its history: the dynamic programme's step."""
        first = np.ones(len(self.row), dtype=bool)
        first[1:] = self.row[1:] != self.row[:-1]
        index = np.arange(len(self.row))
        return np.asarray(index - np.maximum.accumulate(np.where(first, index, 0)))


def _sum_over_favourites(
    shop: Shop, seen: _Seen, factor: np.ndarray, home: np.ndarray, log_scale: np.ndarray
) -> np.ndarray:
    """W(s) of the module docstring, per (order, configuration): (orders, C, K+1).

    `factor` holds F_j(n) of each seen group (scaled); `log_scale` takes the scales
    the programme divides by to stay clear of underflow.
    """
    cat, b = shop.catalogue, shop.behaviour
    k = b.favourite_brands
    n_orders, n_conf = log_scale.shape
    # the favourites' prior: pi_g within the home department
    popularity = bh.brand_popularity(cat, b)
    departments = len(bh.DEPARTMENTS)
    dept_total = np.bincount(cat.group_department, weights=popularity, minlength=departments)
    pi = popularity / dept_total[cat.group_department]
    target_total = np.bincount(
        cat.group_department, weights=np.where(cat.group_is_target, pi, 0), minlength=departments
    )
    seen_pi, seen_target = pi[seen.group], cat.group_is_target[seen.group]
    seen_target_pi = np.bincount(
        seen.row, weights=np.where(seen_target, seen_pi, 0.0), minlength=n_orders
    )
    seen_other_pi = np.bincount(
        seen.row, weights=np.where(seen_target, 0.0, seen_pi), minlength=n_orders
    )
    pi_target = np.maximum(target_total[home] - seen_target_pi, 0.0)
    pi_other = np.maximum(1 - target_total[home] - seen_other_pi, 0.0)

    # state[order, C, slots used, target slots among them], one step per seen group
    state = np.zeros((n_orders, n_conf, k + 1, k + 1))
    state[:, :, 0, 0] = 1.0
    inv_fact = np.array([1 / factorial(m) for m in range(k + 1)])
    coef = factor * (seen_pi[:, None] ** np.arange(k + 1) * inv_fact)[:, None, :]
    rank = seen.rank
    for r in range(int(rank.max()) + 1 if len(rank) else 0):
        for is_target in (False, True):
            step = np.flatnonzero((rank == r) & (seen_target == is_target))
            if not len(step):
                continue
            rows = seen.row[step]
            old = state[rows]
            new = np.zeros_like(old)
            for m in range(k + 1):
                c = coef[step, :, m][:, :, None, None]
                if is_target:
                    new[:, :, m:, m:] += old[:, :, : k + 1 - m, : k + 1 - m] * c
                else:
                    new[:, :, m:, :] += old[:, :, : k + 1 - m, :] * c
            top = new.max(axis=(2, 3))
            state[rows] = new / np.where(top > 0, top, 1.0)[:, :, None, None]
            with np.errstate(divide="ignore"):
                log_scale[rows] += np.log(top)

    # the remaining slots go to unseen groups, a of them target: (used, s) -> s + a,
    # as one matrix product
    spread = np.zeros((n_orders, k + 1, k + 1, k + 1))
    for used in range(k + 1):
        for a in range(k - used + 1):
            rest = k - used - a
            tail = pi_target**a * inv_fact[a] * pi_other**rest * inv_fact[rest]
            for s in range(used + 1):
                spread[:, used, s, s + a] = tail
    return np.asarray(state.reshape(n_orders, n_conf, -1) @ spread.reshape(n_orders, -1, k + 1))


def _market_probability(
    shop: Shop,
    grid: HiddenGrid,
    home: np.ndarray,
    hist: Histories,
    items: slice,
    product: np.ndarray,
) -> np.ndarray:
    """P(a non-loyal draw is the item's product | c, t): `item_probability` at loyalty 0."""
    n_cross_tier = 2 * bh.PRICE_TIERS
    cross_share = np.array([0.0, shop.behaviour.cross_department_item_share])
    # one latent row per (home department, c, t); no favourites: the market draw only
    dept, cross, tier = (
        a.ravel()
        for a in np.meshgrid(np.arange(2), np.arange(2), np.arange(bh.PRICE_TIERS), indexing="ij")
    )
    latent = bh.Latent(
        home_department=dept.astype(np.int8),
        loyalty=np.zeros(len(dept)),
        cross_share=cross_share[cross],
        price_tier=tier.astype(np.int8),
        favourite_groups=np.zeros((len(dept), 0), dtype=np.int64),
    )
    customer = home.astype(np.int64)[:, None] * n_cross_tier + np.arange(n_cross_tier)
    p = bh.item_probability(
        shop.catalogue,
        shop.market,
        latent,
        customer.ravel(),
        np.repeat(hist.item_month[items], n_cross_tier),
        np.repeat(hist.item_phase[items], n_cross_tier),
        np.repeat(product, n_cross_tier),
    ).reshape(len(product), n_cross_tier)
    return np.asarray(p[:, grid.cross_tier], dtype=np.float64)


def _finite(log_values: np.ndarray) -> np.ndarray:
    """A log scale to divide by: -inf (nothing possible) divides by 1 instead."""
    return np.where(np.isfinite(log_values), log_values, 0.0)
