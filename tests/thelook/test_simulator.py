"""The simulator: determinism, thelook fidelity, exact truth, campaign drift, append_days.

Sizes are small (a few thousand users); tolerances are about 4-5 standard errors of the
statistic at that size, so a failure means a real deviation, not bad luck.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import duckdb
import pytest

from tests.thelook.shipped import shipped_settings, shipped_target_brands
from thelook.schema import TABLES
from thelook.settings import SimulationSettings
from thelook.simulator import SimulationError, append_days, history, simulate
from thelook.simulator.truth import read_simulation
from thelook.warehouse import apply_raw_writes, connect

TARGETS = shipped_target_brands()
END = dt.date(2026, 10, 31)


def _settings(**kw: object) -> SimulationSettings:
    return shipped_settings(**{"users": 3000, "seed": 7, "end": END, **kw})


def _world(path: Path, settings: SimulationSettings) -> duckdb.DuckDBPyConnection:
    con = connect(path)
    simulate(con, settings, TARGETS)
    return con


def _contents(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[object, ...]]:
    return con.execute(f"select * from {table} order by all").fetchall()


CONTENT_TABLES = [t.qualified_name for t in TABLES.values()] + [
    "truth.orders",
    "truth.customers",
    "truth.simulation",
]


@pytest.fixture(scope="module")
def behavioural(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    return _world(tmp_path_factory.mktemp("b") / "w.duckdb", _settings(users=4000))


@pytest.fixture(scope="module")
def thelook(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    return _world(tmp_path_factory.mktemp("t") / "w.duckdb", _settings(mode="thelook", users=5000))


def test_same_settings_give_identical_tables(tmp_path: Path) -> None:
    a = _world(tmp_path / "a.duckdb", _settings(users=800))
    b = _world(tmp_path / "b.duckdb", _settings(users=800))
    for table in CONTENT_TABLES:
        assert _contents(a, table) == _contents(b, table), table
    c = _world(tmp_path / "c.duckdb", _settings(users=800, seed=8))
    assert _contents(a, "raw.order_items") != _contents(c, "raw.order_items")


def test_simulate_replaces_an_earlier_world(tmp_path: Path) -> None:
    con = _world(tmp_path / "w.duckdb", _settings(users=900))
    simulate(con, _settings(users=300, mode="thelook"), TARGETS)
    assert con.execute("select count(*) from raw.users").fetchall() == [(300,)]
    assert con.execute("select max(user_id) from truth.customers").fetchall() == [(300,)]
    assert con.execute("select mode from truth.simulation").fetchall() == [("thelook",)]
    orphan_partitions = con.execute(
        """select count(*) from meta.partitions p where table_name = 'order_items'
           and not exists (select 1 from raw.order_items i
                           where strftime(i.created_at, '%Y%m%d') = p.partition_id)"""
    ).fetchall()
    assert orphan_partitions == [(0,)]


def _shares(con: duckdb.DuckDBPyConnection, sql: str) -> dict[object, float]:
    rows = con.execute(sql).fetchall()
    total = sum(n for _, n in rows)
    return {k: n / total for k, n in rows}


def test_thelook_mode_matches_the_generator(thelook: duckdb.DuckDBPyConnection) -> None:
    con = thelook
    users = 5000
    # one proportion's standard error at n=5000 is at most 0.0071; 5 of them:
    tol = 5 * math.sqrt(0.25 / users)
    gender = _shares(con, "select gender, count(*) from raw.users group by 1")
    assert abs(gender["M"] - 0.5) < tol
    lo, hi, mean_age = con.execute("select min(age), max(age), avg(age) from raw.users").fetchall()[
        0
    ]
    assert (lo, hi) == (12, 70)
    assert abs(mean_age - 41) < 5 * 17.3 / math.sqrt(users)  # uniform 12-70: sd 17.3
    orders_per_user = _shares(
        con,
        """select coalesce(n, 0), count(*) from raw.users u
           left join (select user_id, count(*) n from raw.orders group by 1) o on o.user_id = u.id
           group by 1""",
    )
    for k, p in enumerate((0.2, 0.5, 0.2, 0.05, 0.05)):
        assert abs(orders_per_user.get(k, 0.0) - p) < tol, (k, orders_per_user)
    n_orders = con.execute("select count(*) from raw.orders").fetchall()[0][0]
    tol_o = 5 * math.sqrt(0.25 / n_orders)
    items = _shares(con, "select num_of_item, count(*) from raw.orders group by 1")
    for k, p in enumerate((0.7, 0.2, 0.05, 0.05), start=1):
        assert abs(items.get(k, 0.0) - p) < tol_o, (k, items)
    status = _shares(con, "select status, count(*) from raw.orders group by 1")
    expected = {"Complete": 0.25, "Cancelled": 0.15, "Returned": 0.10, "Processing": 0.20,
                "Shipped": 0.30}  # fmt: skip
    for s, p in expected.items():
        assert abs(status[s] - p) < tol_o, (s, status)
    inconsistent = con.execute(
        """select
             count(*) filter (where p.department <> case u.gender when 'M' then 'Men'
                                                                  else 'Women' end),
             count(*) filter (where i.sale_price <> p.retail_price),
             count(*) filter (where i.status <> o.status),
             count(*) filter (where o.gender <> u.gender)
           from raw.order_items i join raw.products p on p.id = i.product_id
           join raw.users u on u.id = i.user_id join raw.orders o on o.order_id = i.order_id"""
    ).fetchall()
    assert inconsistent == [(0, 0, 0, 0)]
    wrong_counts = con.execute(
        """select count(*) from raw.orders o
           join (select order_id, count(*) n from raw.order_items group by 1) i using (order_id)
           where i.n <> o.num_of_item"""
    ).fetchall()
    assert wrong_counts == [(0,)]
    # item times: from 4 hours before to 4 days after the order, as in the generator's output
    lo_h, hi_h = con.execute(
        """select min(epoch(i.created_at - o.created_at)), max(epoch(i.created_at - o.created_at))
           from raw.order_items i join raw.orders o using (order_id)"""
    ).fetchall()[0]
    assert lo_h >= -4 * 3600 and hi_h <= 4 * 86400 + 4 * 3600


def _labelled_orders(con: duckdb.DuckDBPyConnection) -> str:
    brands = ", ".join("'" + b + "'" for b in TARGETS)
    return f"""(select t.order_id, t.p_target, t.created_at,
                       max((p.brand in ({brands}))::int) as label
                from truth.orders t join raw.orders o using (order_id)
                join raw.order_items i using (order_id) join raw.products p on p.id = i.product_id
                where o.status <> 'Cancelled' group by all)"""


def test_truth_is_one_probability_per_order(behavioural: duckdb.DuckDBPyConnection) -> None:
    con = behavioural
    orders, truth, distinct, lo, hi = con.execute(
        """select (select count(*) from raw.orders), count(*), count(distinct order_id),
                  min(p_target), max(p_target) from truth.orders"""
    ).fetchall()[0]
    assert orders == truth == distinct
    assert lo >= 0 and hi <= 1
    assert (
        con.execute(
            "select count(*) from truth.customers c join raw.users u on u.id = c.user_id"
        ).fetchall()
        == con.execute("select count(*) from raw.users").fetchall()
    )


def test_truth_matches_realised_labels(behavioural: duckdb.DuckDBPyConnection) -> None:
    con = behavioural
    n, mean_p, rate, var = con.execute(
        f"select count(*), avg(p_target), avg(label), avg(p_target * (1 - p_target)) "
        f"from {_labelled_orders(con)}"
    ).fetchall()[0]
    # labels are independent Bernoulli(p_target): the mean's standard error is sqrt(var / n)
    assert abs(rate - mean_p) < 5 * math.sqrt(var / n)
    top, bottom = con.execute(
        f"""with d as (select label, p_target, ntile(10) over (order by p_target) as decile
                       from {_labelled_orders(con)})
            select avg(label) filter (where decile = 10), avg(label) filter (where decile = 1)
            from d"""
    ).fetchall()[0]
    assert top > bottom + 0.2


def test_thelook_truth_is_the_department_share(thelook: duckdb.DuckDBPyConnection) -> None:
    distinct = thelook.execute(
        """select count(distinct round(t.p_target, 12)) from truth.orders t
           join raw.orders o using (order_id)"""
    ).fetchall()
    assert distinct == [(2,)]  # one value per department


def test_campaign_raises_target_share(tmp_path: Path) -> None:
    start = dt.date(2023, 1, 1)
    con = _world(
        tmp_path / "w.duckdb", _settings(users=4000, campaign_start=start, campaign_uplift=4.0)
    )
    brands = ", ".join("'" + b + "'" for b in TARGETS)
    before, after, n_before, n_after = con.execute(
        f"""select avg(is_target) filter (where o.created_at < ?),
                   avg(is_target) filter (where o.created_at >= ?),
                   count(*) filter (where o.created_at < ?), count(*) filter (where o.created_at >= ?)
            from (select order_id, (p.brand in ({brands}))::int as is_target
                  from raw.order_items i join raw.products p on p.id = i.product_id)
            join raw.orders o using (order_id)""",
        [start, start, start, start],
    ).fetchall()[0]
    se = math.sqrt(0.25 / n_before + 0.25 / n_after)
    assert after > before + 5 * se
    # ...and truth follows: p_target jumps at campaign_start for the same customers
    p_before, p_after = con.execute(
        "select avg(p_target) filter (where created_at < ?), avg(p_target) filter "
        "(where created_at >= ?) from truth.orders",
        [start, start],
    ).fetchall()[0]
    assert p_after > p_before


def _partitions(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, object]]:
    rows = con.execute(
        "select partition_id, total_rows, last_modified_time from meta.partitions "
        "where table_name = 'order_items'"
    ).fetchall()
    return {p: (n, t) for p, n, t in rows}


def test_append_days_adds_new_days_and_keeps_the_past(tmp_path: Path) -> None:
    con = _world(tmp_path / "w.duckdb", _settings(users=3000))
    before = _partitions(con)
    old_end = END.strftime("%Y%m%d")
    old_items = con.execute(
        "select * from raw.order_items where created_at < ? order by id", [END + dt.timedelta(1)]
    ).fetchall()
    result = append_days(con, 5)
    after = _partitions(con)
    new_days = {(END + dt.timedelta(days=d)).strftime("%Y%m%d") for d in range(1, 6)}
    assert result.end == END + dt.timedelta(days=5)
    assert con.execute("select end_date from truth.simulation").fetchall() == [(result.end,)]
    # every appended day has its partition; nothing up to the old end was rewritten
    assert new_days <= set(after)
    assert {p: v for p, v in after.items() if p <= old_end} == {
        p: v for p, v in before.items() if p <= old_end
    }
    # written partitions: the new days, plus future-dated items up to 4 days after them
    limit = (END + dt.timedelta(days=5 + 5)).strftime("%Y%m%d")  # 4 days + 4 hours
    assert result.first_partition is not None and result.first_partition > old_end
    assert result.last_partition is not None and result.last_partition <= limit
    assert (
        old_items
        == con.execute(
            "select * from raw.order_items where created_at < ? order by id",
            [END + dt.timedelta(1)],
        ).fetchall()
    )
    # appended orders are in the new days, truth covers them, ids do not collide
    assert con.execute(
        """select count(*) filter (where o.created_at < ?), count(t.order_id) = count(*)
           from raw.orders o left join truth.orders t using (order_id)
           where o.order_id > (select max(order_id) from raw.orders where created_at < ?)""",
        [END + dt.timedelta(1), END + dt.timedelta(1)],
    ).fetchall() == [(0, True)]
    assert con.execute(
        "select count(*) = count(distinct user_id) from truth.customers"
    ).fetchall() == [(True,)]


def test_append_days_is_deterministic_in_any_split(tmp_path: Path) -> None:
    a = _world(tmp_path / "a.duckdb", _settings(users=1500))
    b = _world(tmp_path / "b.duckdb", _settings(users=1500))
    append_days(a, 3)
    append_days(b, 1)
    append_days(b, 2)
    for table in [*CONTENT_TABLES[:-1], "raw.users"]:
        assert _contents(a, table) == _contents(b, table), table
    assert a.execute("select end_date, appended_days from truth.simulation").fetchall() == (
        b.execute("select end_date, appended_days from truth.simulation").fetchall()
    )


def test_append_days_works_in_thelook_mode(tmp_path: Path) -> None:
    con = _world(tmp_path / "w.duckdb", _settings(users=1000, mode="thelook"))
    result = append_days(con, 2)
    assert result.rows["truth.orders"] > 0


def test_append_days_needs_a_simulation(tmp_path: Path) -> None:
    con = connect(tmp_path / "empty.duckdb")
    with pytest.raises(SimulationError, match="no simulation"):
        append_days(con, 1)


def test_the_stored_simulation_round_trips(behavioural: duckdb.DuckDBPyConnection) -> None:
    stored = read_simulation(behavioural)
    assert stored.settings == _settings(users=4000)
    assert stored.target_brands == TARGETS
    assert stored.end == END


def test_append_days_refuses_invalid_stored_settings(tmp_path: Path) -> None:
    con = _world(tmp_path / "w.duckdb", _settings(users=20))
    con.execute("update truth.simulation set config = json_merge_patch(config, '{\"users\": 0}')")
    with pytest.raises(SimulationError, match="users"):
        append_days(con, 1)


def test_a_failed_simulation_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    con = _world(tmp_path / "w.duckdb", _settings(users=500))
    before = {t: _contents(con, t) for t in ("raw.users", "raw.order_items", "truth.orders")}

    def write_then_fail(*args: object, **kwargs: object) -> None:
        apply_raw_writes(*args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("disk full")

    monkeypatch.setattr(history, "apply_raw_writes", write_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        simulate(con, _settings(users=200, seed=1), TARGETS)
    assert before == {t: _contents(con, t) for t in before}


def test_tiny_worlds_and_quiet_days(tmp_path: Path) -> None:
    con = _world(tmp_path / "w.duckdb", _settings(users=20))
    for _ in range(3):
        append_days(con, 1)
    assert con.execute("select end_date from truth.simulation").fetchall() == [
        (END + dt.timedelta(days=3),)
    ]
    assert con.execute(
        "select count(*) from raw.orders o anti join truth.orders t using (order_id)"
    ).fetchall() == [(0,)]
