"""The observable ceiling: exact building blocks, exact grouping, and a place between baselines.

The simulated shop is small (3,000 users); the exact checks (true state, brute force,
quadrature) hold to rounding, the statistical ones to about 4-5 standard errors.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom
from sklearn.metrics import roc_auc_score

from tests.thelook.shipped import shipped_settings, shipped_target_brands
from thelook import behaviour as bh
from thelook import ceiling
from thelook.settings import BehaviourSettings
from thelook.simulator import SimulationError, simulate
from thelook.warehouse import connect

TARGETS = shipped_target_brands()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    con = connect(tmp_path_factory.mktemp("ceiling") / "w.duckdb")
    simulate(con, shipped_settings(users=3000, seed=7, end=dt.date(2026, 10, 31)), TARGETS)
    return con


@pytest.fixture(scope="module")
def orders(shop: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Non-cancelled orders: label, gender, truth, posterior and number of earlier items."""
    brands = ", ".join("'" + b + "'" for b in TARGETS)
    df = (
        shop.execute(
            f"""select o.order_id, any_value(u.gender) as gender, any_value(t.p_target) as truth,
                       max((p.brand in ({brands}))::int) as label
                from raw.orders o join raw.order_items i using (order_id)
                join raw.products p on p.id = i.product_id join raw.users u on u.id = o.user_id
                join truth.orders t using (order_id)
                where o.status <> 'Cancelled' group by o.order_id order by o.order_id"""
        )
        .df()
        .set_index("order_id")
    )
    df["posterior"] = ceiling.observable_posterior(shop, df.index.to_numpy())
    hist = ceiling.read_histories(shop, ceiling.read_shop(shop), df.index.to_numpy())
    df["earlier_items"] = np.bincount(hist.item_order, minlength=len(hist))
    df["gender_rule"] = df.groupby("gender")["label"].transform("mean")
    return df


# --------------------------------------------------------------------------- on a simulated shop


def test_the_true_state_reproduces_truth(shop: duckdb.DuckDBPyConnection) -> None:
    truth = shop.execute("select order_id, p_target from truth.orders").df().set_index("order_id")
    p = ceiling.true_state_probability(shop)
    assert len(p) == len(truth)
    np.testing.assert_allclose(p.to_numpy(), truth["p_target"].reindex(p.index), rtol=1e-12)


def test_the_posterior_is_the_prior_predictive_without_history(
    shop: duckdb.DuckDBPyConnection, orders: pd.DataFrame
) -> None:
    assert orders["posterior"].between(0, 1).all()
    s = ceiling.read_shop(shop)
    first = orders.index[orders["earlier_items"] == 0].to_numpy()
    hist = ceiling.read_histories(shop, s, first)
    # independently of the dynamic programme: favourites' target slots are Binomial(K, pi_T)
    b, cat = s.behaviour, s.catalogue
    grid = ceiling.hidden_grid(b)
    popularity = bh.brand_popularity(cat, b)
    k = b.favourite_brands
    expected = np.zeros((2, 12, 2))  # (department, month, phase)
    contexts = list(itertools.product(range(12), range(2)))
    for dept in range(2):
        in_dept = cat.group_department == dept
        pi_target = popularity[in_dept & cat.group_is_target].sum() / popularity[in_dept].sum()
        target = np.flatnonzero(in_dept & cat.group_is_target)[0]
        other = np.flatnonzero(in_dept & ~cat.group_is_target)[0]
        for slots in range(k + 1):
            latent = bh.Latent(
                home_department=np.full(len(grid), dept, dtype=np.int8),
                loyalty=grid.loyalty,
                cross_share=grid.cross_share,
                price_tier=grid.tier,
                favourite_groups=np.tile(
                    np.where(np.arange(k) < slots, target, other), (len(grid), 1)
                ),
            )
            everyone = np.arange(len(grid))
            for month, phase in contexts:
                p = ceiling.order_probability(
                    s, latent, everyone, np.full(len(grid), month), np.full(len(grid), phase)
                )
                expected[dept, month, phase] += (
                    binom.pmf(slots, k, pi_target) * (grid.prior * p).sum()
                )
    expected = expected[hist.home, hist.month, hist.phase]
    np.testing.assert_allclose(orders.loc[first, "posterior"], expected, rtol=1e-10)


def test_the_posterior_sits_between_the_gender_rule_and_the_oracle(orders: pd.DataFrame) -> None:
    with_history = orders[orders["earlier_items"] > 0]
    auc = {
        c: roc_auc_score(with_history["label"], with_history[c])
        for c in ("gender_rule", "posterior", "truth")
    }
    assert auc["gender_rule"] + 0.02 < auc["posterior"] < auc["truth"] - 0.03, auc
    brier = {c: ((orders[c] - orders["label"]) ** 2).mean() for c in ("posterior", "truth")}
    assert brier["truth"] < brier["posterior"], brier
    # calibration in the large: labels are Bernoulli(truth), and E[posterior] = E[truth]
    n = len(orders)
    se = math.sqrt((orders["truth"] * (1 - orders["truth"])).mean() / n)
    assert abs(orders["posterior"].mean() - orders["label"].mean()) < 5 * se
    assert abs(orders["posterior"].mean() - orders["truth"].mean()) < 5 * se


def test_cancelled_items_can_be_included(
    shop: duckdb.DuckDBPyConnection, orders: pd.DataFrame
) -> None:
    ids = orders.index.to_numpy()[:300]
    s = ceiling.read_shop(shop)
    without = ceiling.read_histories(shop, s, ids)
    with_cancelled = ceiling.read_histories(shop, s, ids, include_cancelled=True)
    assert len(with_cancelled.item_product) > len(without.item_product)
    p = ceiling.observable_posterior(shop, ids, include_cancelled=True)
    assert p.between(0, 1).all() and not p.equals(orders.loc[ids, "posterior"])


def test_thelook_mode_gives_the_department_share(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    simulate(con, shipped_settings(mode="thelook", users=300, seed=3), TARGETS)
    truth = con.execute("select order_id, p_target from truth.orders order by order_id").df()
    p = ceiling.observable_posterior(con, truth["order_id"].to_numpy())
    np.testing.assert_allclose(p.to_numpy(), truth["p_target"], rtol=1e-12)


def test_no_simulation_no_ceiling(tmp_path: Path) -> None:
    with pytest.raises(SimulationError, match="no simulation"):
        ceiling.observable_posterior(connect(tmp_path / "w.duckdb"), [1])


# --------------------------------------------------------------------------- on a tiny catalogue

# (department, brand, is target, categories of its products)
TINY_GROUPS = (
    (0, "A", True, ("Shorts", "Tops")),
    (0, "B", False, ("Sweaters", "Tops", "Shorts")),
    (0, "C", False, ("Tops",)),
    (0, "D", True, ("Sweaters",)),
    (1, "A", True, ("Tops", "Shorts")),
    (1, "E", False, ("Sweaters", "Tops")),
    (1, "F", False, ("Shorts",)),
)
TINY_CATEGORIES = ("Shorts", "Sweaters", "Tops")


def _tiny_catalogue() -> bh.Catalogue:
    dept = np.array([d for d, _, _, cats in TINY_GROUPS for _ in cats], dtype=np.int8)
    size = np.array([len(cats) for *_, cats in TINY_GROUPS], dtype=np.int64)
    is_target = np.array([t for _, _, t, _ in TINY_GROUPS])
    n = len(dept)
    return bh.Catalogue(
        product_id=np.arange(100, 100 + n, dtype=np.int64),
        department=dept,
        retail_price=np.linspace(5, 50, n),
        category=np.array(
            [TINY_CATEGORIES.index(c) for *_, cats in TINY_GROUPS for c in cats], dtype=np.int32
        ),
        categories=TINY_CATEGORIES,
        tier=(np.arange(n) % bh.PRICE_TIERS).astype(np.int8),
        is_target=np.repeat(is_target, size),
        group_start=np.cumsum(size) - size,
        group_size=size,
        group_department=np.array([d for d, *_ in TINY_GROUPS], dtype=np.int8),
        group_brand=tuple(b for _, b, _, _ in TINY_GROUPS),
        group_is_target=is_target,
    )


TINY_BEHAVIOUR = BehaviourSettings(
    favourite_brands=3,
    brand_popularity_exponent=1.5,
    loyalty_alpha=2.0,
    loyalty_beta=3.0,
    cross_department_customer_share=0.25,
    cross_department_item_share=0.4,
    price_tier_affinity=3.0,
    seasonal_category_factor=2.0,
    winter_months=(12, 1),
    winter_categories=("Sweaters",),
    summer_months=(6, 7),
    summer_categories=("Shorts",),
    campaign_uplift=2.0,
)


def _tiny_shop() -> ceiling.Shop:
    cat = _tiny_catalogue()
    return ceiling.Shop(
        behaviour=TINY_BEHAVIOUR,
        items_per_order_weights=(0.6, 0.3, 0.1),
        campaign_start=np.datetime64("2026-07-01", "us"),
        catalogue=cat,
        market=bh.build_market(cat, TINY_BEHAVIOUR),
    )


def _tiny_histories() -> ceiling.Histories:
    """Orders with short histories: none, repeats, target groups, the other department."""
    # (home, month, phase, [(catalogue index, month, phase), ...])
    orders = [
        (0, 5, 0, []),
        (0, 11, 1, [(1, 0, 0), (3, 6, 1), (0, 6, 1)]),
        (0, 0, 0, [(9, 4, 0), (5, 4, 0), (6, 4, 0), (2, 11, 0), (3, 11, 0)]),
        (1, 6, 1, [(7, 0, 0), (8, 0, 0), (7, 2, 0), (11, 3, 0), (4, 7, 1)]),
        (1, 1, 1, [(9, 1, 0), (10, 1, 0), (11, 5, 0), (11, 6, 1), (7, 8, 1), (8, 9, 1)]),
        (1, 2, 0, [(7, 1, 0)]),
    ]
    items = [(row, *item) for row, (*_, history) in enumerate(orders) for item in history]
    return ceiling.Histories(
        order_id=np.arange(len(orders), dtype=np.int64),
        customer_id=np.arange(len(orders), dtype=np.int64),
        home=np.array([o[0] for o in orders], dtype=np.int8),
        month=np.array([o[1] for o in orders], dtype=np.int64),
        phase=np.array([o[2] for o in orders], dtype=np.int64),
        item_order=np.array([i[0] for i in items], dtype=np.int64),
        item_product=np.array([i[1] for i in items], dtype=np.int64),
        item_month=np.array([i[2] for i in items], dtype=np.int64),
        item_phase=np.array([i[3] for i in items], dtype=np.int64),
    )


def _brute_force(shop: ceiling.Shop, hist: ceiling.Histories, loyalty_nodes: int) -> np.ndarray:
    """Every ordered favourite tuple, every (loyalty node, cross flag, tier), explicitly."""
    cat, k = shop.catalogue, shop.behaviour.favourite_brands
    grid = ceiling.hidden_grid(shop.behaviour, loyalty_nodes)
    popularity = bh.brand_popularity(cat, shop.behaviour)
    out = np.empty(len(hist))
    for row in range(len(hist)):
        home = hist.home[row]
        groups = np.flatnonzero(cat.group_department == home)
        pi = popularity[groups] / popularity[groups].sum()
        tuples = np.array(list(itertools.product(range(len(groups)), repeat=k)))
        t_idx, c_idx = (a.ravel() for a in np.meshgrid(range(len(tuples)), range(len(grid))))
        latent = bh.Latent(
            home_department=np.full(len(t_idx), home, dtype=np.int8),
            loyalty=grid.loyalty[c_idx],
            cross_share=grid.cross_share[c_idx],
            price_tier=grid.tier[c_idx],
            favourite_groups=groups[tuples[t_idx]],
        )
        everyone = np.arange(len(t_idx))
        weight = pi[tuples].prod(axis=1)[t_idx] * grid.prior[c_idx]
        for i in np.flatnonzero(hist.item_order == row):
            weight = weight * bh.item_probability(
                cat,
                shop.market,
                latent,
                everyone,
                np.full(len(everyone), hist.item_month[i]),
                np.full(len(everyone), hist.item_phase[i]),
                np.full(len(everyone), hist.item_product[i]),
            )
        p = ceiling.order_probability(
            shop,
            latent,
            everyone,
            np.full(len(everyone), hist.month[row]),
            np.full(len(everyone), hist.phase[row]),
        )
        out[row] = (weight * p).sum() / weight.sum()
    return out


def test_grouped_favourites_equal_the_brute_force_enumeration() -> None:
    shop, hist = _tiny_shop(), _tiny_histories()
    grouped = ceiling.posterior(shop, hist, loyalty_nodes=6)
    np.testing.assert_allclose(grouped, _brute_force(shop, hist, 6), rtol=1e-11)
    # histories of at most 6 items and orders of at most 3: 6 nodes integrate exactly
    np.testing.assert_allclose(grouped, ceiling.posterior(shop, hist), rtol=1e-11)
    assert np.ptp(grouped) > 0.2  # the histories do move the probability


def test_item_probability_is_what_draw_products_samples() -> None:
    shop = _tiny_shop()
    cat, market = shop.catalogue, shop.market
    latent = bh.draw_latent(np.random.default_rng(1), np.array([0, 1]), cat, TINY_BEHAVIOUR)
    products = np.arange(len(cat.product_id))
    for customer, month, phase in ((0, 0, 0), (1, 6, 1)):
        args = (np.full(len(products), customer), np.full(len(products), month))
        p = bh.item_probability(cat, market, latent, *args, np.full(len(products), phase), products)
        assert p.sum() == pytest.approx(1, abs=1e-12)
        q = bh.target_item_probability(
            cat, market, latent, np.array([customer]), np.array([month]), np.array([phase])
        )
        assert p[cat.is_target].sum() == pytest.approx(q[0], abs=1e-12)
        n = 200_000
        drawn = bh.draw_products(
            np.random.default_rng(2),
            cat,
            market,
            latent,
            np.full(n, customer),
            np.full(n, month),
            np.full(n, phase),
        )
        freq = np.bincount(drawn, minlength=len(products)) / n
        assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-9)


def test_the_loyalty_quadrature_is_the_beta_prior() -> None:
    grid = ceiling.hidden_grid(TINY_BEHAVIOUR, 8)
    a, b = TINY_BEHAVIOUR.loyalty_alpha, TINY_BEHAVIOUR.loyalty_beta
    assert (grid.prior * grid.loyalty).sum() == pytest.approx(a / (a + b), abs=1e-12)
    assert (grid.prior * grid.loyalty**2).sum() == pytest.approx(
        a * (a + 1) / ((a + b) * (a + b + 1)), abs=1e-12
    )
    assert (grid.prior * (grid.cross_share > 0)).sum() == pytest.approx(0.25, abs=1e-12)


def test_the_prior_predictive_is_the_latent_draws_average() -> None:
    """Against the simulator's own latent draws, by Monte Carlo."""
    shop = _tiny_shop()
    n = 200_000
    latent = bh.draw_latent(
        np.random.default_rng(3), np.zeros(n, dtype=np.int8), shop.catalogue, TINY_BEHAVIOUR
    )
    hist = _tiny_histories()
    p = ceiling.order_probability(
        shop, latent, np.arange(n), np.full(n, hist.month[0]), np.full(n, hist.phase[0])
    )
    assert ceiling.posterior(shop, hist)[0] == pytest.approx(p.mean(), abs=5 * p.std() / n**0.5)


def test_long_histories_find_the_true_state() -> None:
    """Consistency: the posterior tends to the oracle's probability as the history grows."""
    shop = _tiny_shop()
    rng = np.random.default_rng(4)
    n, m = 6, 1500
    home = np.array([0, 1] * (n // 2), dtype=np.int8)
    latent = bh.draw_latent(rng, home, shop.catalogue, TINY_BEHAVIOUR)
    customer = np.repeat(np.arange(n), m)
    month, phase = rng.integers(0, 12, n * m), rng.integers(0, 2, n * m)
    product = bh.draw_products(rng, shop.catalogue, shop.market, latent, customer, month, phase)
    month_now, phase_now = np.full(n, 7), np.ones(n, dtype=np.int64)
    hist = ceiling.Histories(
        order_id=np.arange(n),
        customer_id=np.arange(n),
        home=home,
        month=month_now,
        phase=phase_now,
        item_order=customer,
        item_product=product,
        item_month=month,
        item_phase=phase,
    )
    truth = ceiling.order_probability(shop, latent, np.arange(n), month_now, phase_now)
    np.testing.assert_allclose(ceiling.posterior(shop, hist), truth, atol=0.03)
