"""Between the draws and DuckDB: drawn arrays staged as temp tables, typed as raw.

Every staged relation is a temp table named `_sim_<name>` (`_sim_users`, `_sim_orders`,
`_sim_order_items`, `_sim_truth_orders`, ...) that `history` and `append` hand to the
warehouse's one write path; `drop_staged` removes them all. Text columns (names, e-mails,
addresses, statuses) are assembled here, in SQL, from the indices the draws chose. The
way back, `load_world`, rebuilds a stored simulation's world for append_days.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa

from thelook import behaviour as bh
from thelook.schema import RAW_SCHEMA, TABLES
from thelook.settings import SimulationSettings
from thelook.simulator.draws import (
    EMAIL_DOMAINS,
    STATUSES,
    TRAFFIC_SOURCES,
    Lookups,
    Orders,
    World,
)
from thelook.simulator.truth import TRUTH_SCHEMA


def register_lookups(con: duckdb.DuckDBPyConnection) -> Lookups:
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
    return Lookups(np.cumsum(w) / w.sum(), counts)


def stage_users(con: duckdb.DuckDBPyConnection, users: dict[str, np.ndarray]) -> None:
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


def stage_orders(con: duckdb.DuckDBPyConnection, o: Orders, cat: bh.Catalogue) -> None:
    """raw.orders and raw.order_items rows, and their truth.orders rows."""
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


def stage_customers(con: duckdb.DuckDBPyConnection, world: World, rows: slice) -> None:
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


def stage_catalogue(con: duckdb.DuckDBPyConnection) -> None:
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


def stage_empty_optional(con: duckdb.DuckDBPyConnection) -> None:
    """The simulator makes no events or inventory_items; writing them empty keeps meta true."""
    for name in ("events", "inventory_items"):
        cols = ", ".join(f"null::{c.duckdb_type} as {c.name}" for c in TABLES[name].columns)
        con.execute(f"create or replace temp table _sim_{name} as select {cols} limit 0")


def drop_staged(con: duckdb.DuckDBPyConnection) -> None:
    for (name,) in con.execute(
        "select table_name from duckdb_tables() where temporary and table_name like '\\_sim\\_%' escape '\\'"
    ).fetchall():
        con.execute(f"drop table if exists temp.{name}")


def load_world(
    con: duckdb.DuckDBPyConnection, settings: SimulationSettings, target_brands: Sequence[str]
) -> World:
    """Rebuild the world of an existing simulation from truth.customers."""
    behaviour = settings.behaviour_in_force
    cat = bh.load_catalogue(con, tuple(target_brands))
    cols = con.execute(
        f"""select c.user_id, case c.home_department when 'Men' then 0 else 1 end as home,
                   c.loyalty, c.cross_department_share, c.price_tier - 1 as tier,
                   c.base_orders, c.order_rate_per_day, u.created_at
            from {TRUTH_SCHEMA}.customers c join {RAW_SCHEMA}.users u on u.id = c.user_id
            order by c.user_id"""
    ).fetchnumpy()
    k = behaviour.favourite_brands
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
    return World(
        settings=settings,
        catalogue=cat,
        market=bh.build_market(cat, behaviour),
        latent=latent,
        user_id=np.asarray(cols["user_id"], dtype=np.int64),
        signup_at=np.asarray(cols["created_at"], dtype="datetime64[us]").astype(np.int64),
        base_orders=np.asarray(cols["base_orders"], dtype=np.int64),
        order_rate=np.asarray(cols["order_rate_per_day"], dtype=np.float64),
    )


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
