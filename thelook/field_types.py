"""How a raw text field becomes a value of its column's BigQuery type, in DuckDB SQL.

The loader reads every field as text and types it here, so that a value that does not
parse is found (and named, with its row) instead of silently becoming NULL.
"""

from __future__ import annotations

from thelook.schema import Column

TEXT_TYPES = ("STRING", "GEOGRAPHY")


def unparsable_sql(column: Column, typed: str) -> str:
    field = ident(column.name)
    return f"({field} is not null and lower(trim({field})) not in ('', 'null') and {typed} is null)"


def typed_sql(column: Column, field: str) -> str:
    """SQL that parses one raw text field as the column's BigQuery type (NULL if it cannot)."""
    if column.bq_type in TEXT_TYPES:
        return field
    # In a typed column an empty field or the text `null` can only mean NULL.
    value = f"(case when lower(trim({field})) in ('', 'null') then null else trim({field}) end)"
    if column.bq_type == "INT64":
        # Exports write some integers as 1.0; only a whole number is accepted
        # (DuckDB itself would round '1.5' to 2).
        return (
            f"(case when regexp_full_match({value}, '[+-]?[0-9]+(\\.0*)?') "
            f"then try_cast(regexp_replace({value}, '\\.0*$', '') as bigint) end)"
        )
    if column.bq_type == "FLOAT64":
        return f"try_cast({value} as double)"
    if column.bq_type == "TIMESTAMP":
        # With a zone or offset the instant is converted to UTC; without, it is taken as UTC.
        return f"(try_cast({value} as timestamptz) at time zone 'UTC')"
    raise AssertionError(column.bq_type)


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
