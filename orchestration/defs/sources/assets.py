"""The raw thelook_ecommerce tables as external assets: nextbuy reads them, the shop (or
`nextbuy simulate` / `load-thelook`) writes them, so lineage starts at raw."""

from __future__ import annotations

import dagster as dg

from orchestration.environment import warehouse_kind
from thelook.schema import META_SCHEMA, RAW_SCHEMA, TABLES

_DESCRIPTIONS = {
    "users": "One row per registered customer (raw, as it arrived).",
    "products": "One row per catalogue product (raw, as it arrived).",
    "orders": "One row per order; may be missing for some items in real exports.",
    "order_items": "One row per ordered item; day-partitioned by created_at.",
    "distribution_centers": "One row per distribution center.",
}


# The simulator's ground truth (thelook/README.md): the oracle's scores in the training
# report come from it, so lineage shows it as an input of candidate_model.
TRUTH_ORDERS_KEY = dg.AssetKey(["truth", "orders"])


def source_column_descriptions() -> dict[str, dict[str, str]]:
    """table -> column -> description of the raw thelook tables, from dbt's sources YAML
    (dbt_project/models/staging/_thelook__sources.yml), where analysts read them too."""
    import json

    from orchestration.dbt import prepare_manifest

    manifest = json.loads(prepare_manifest().read_text(encoding="utf-8"))
    return {
        source["name"]: {
            name: column.get("description", "") for name, column in source["columns"].items()
        }
        for source in manifest["sources"].values()
        if source["source_name"] == "thelook"
    }


def raw_table_specs() -> list[dg.AssetSpec]:
    described = source_column_descriptions()
    specs = [
        dg.AssetSpec(
            key=dg.AssetKey([RAW_SCHEMA, table.name]),
            description=_DESCRIPTIONS.get(table.name, f"raw.{table.name}"),
            group_name="sources",
            kinds={warehouse_kind()},
            metadata={
                "dagster/column_schema": dg.TableSchema(
                    columns=[
                        dg.TableColumn(
                            c.name,
                            c.bq_type,
                            description=described.get(table.name, {}).get(c.name) or None,
                        )
                        for c in table.columns
                    ]
                ),
                "dagster/table_name": table.qualified_name,
            },
        )
        for table in TABLES.values()
        if table.name in _DESCRIPTIONS
    ]
    specs.append(
        dg.AssetSpec(
            key=dg.AssetKey([META_SCHEMA, "partitions"]),
            description=(
                "One row per day partition of order_items with its row count and last "
                "modification, after BigQuery's INFORMATION_SCHEMA.PARTITIONS."
            ),
            group_name="sources",
            kinds={warehouse_kind()},
        )
    )
    specs.append(
        dg.AssetSpec(
            key=TRUTH_ORDERS_KEY,
            description=(
                "The simulator's true probability that each order holds a target brand "
                "(simulated shops only): the ceiling the training report compares against."
            ),
            group_name="sources",
            kinds={warehouse_kind()},
            metadata={"dagster/table_name": "truth.orders"},
        )
    )
    return specs


source_specs = raw_table_specs()
