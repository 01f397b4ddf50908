"""What a load leaves unjoined, said as warnings the person loading can act on.

A table that the rows of this load point to (an order's items, an item's order, product
or customer) may be absent from the load. That is a warning, not a refusal: merge loads
deliver tables separately (a day of order_items without re-sending users or products),
the rows they point to are then usually in raw already, and a later load can still bring
them; the raw contract also keeps ids that do not join. So the loader writes, and says
what the missing rows mean for the features and labels: a warning is given only when the
related table is not in this load *and* some of this load's rows find no match in raw
after it. What cannot be stored faithfully is refused instead (thelook.loader).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import duckdb

from thelook.schema import TABLES
from thelook.warehouse import first_row


@dataclass(frozen=True)
class Relation:
    table: str
    column: str
    related: str
    related_column: str
    # What a row of `table` without a match in `related` means downstream (int_orders,
    # int_purchase_items, the features' join of users).
    meaning: str
    noun: str  # what is counted: distinct values of `column`


RELATIONS = (
    Relation(
        "orders",
        "order_id",
        "order_items",
        "order_id",
        "the orders it adds have no items, so they add no purchases and no training examples",
        "orders",
    ),
    Relation(
        "order_items",
        "order_id",
        "orders",
        "order_id",
        "the orders of its items have no orders row; each such order's time is taken from "
        "its earliest item's created_at",
        "orders",
    ),
    Relation(
        "order_items",
        "product_id",
        "products",
        "id",
        "its items name products raw does not hold; their brand is 'Unknown', so they never "
        "count as a target brand",
        "products",
    ),
    Relation(
        "order_items",
        "user_id",
        "users",
        "id",
        "its items' customers are not in raw.users; their gender, age, country and other "
        "profile features are empty",
        "customers",
    ),
)


def unjoined_warnings(con: duckdb.DuckDBPyConnection, staged: Mapping[str, str]) -> tuple[str, ...]:
    """One sentence per relation this load leaves unjoined, for `staged` (raw table name
    -> relation holding this load's rows) once it is written to raw."""
    warnings = []
    for r in RELATIONS:
        if r.table not in staged or r.related in staged:
            continue
        related = TABLES[r.related].qualified_name
        row = first_row(
            con,
            f"select count(distinct s.{r.column}) filter (where not exists ("
            f"  select 1 from {related} t where t.{r.related_column} = s.{r.column})), "
            f"count(distinct s.{r.column}) "
            f"from {staged[r.table]} s where s.{r.column} is not null",
        )
        assert row is not None
        missing, total = row
        if missing:
            warnings.append(
                f"{r.related}.csv not in this load: {r.meaning} "
                f"({missing:,} of its {total:,} {r.noun} are not in raw.{r.related})"
            )
    return tuple(warnings)
