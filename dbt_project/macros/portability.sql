{#
  Where DuckDB and BigQuery SQL differ, models call these macros and dbt dispatches on
  the adapter. `default__` is DuckDB's dialect (the embedded default).
#}

{# A customer's last `n` values before and including this row, oldest first, ";"-joined. #}
{% macro trailing_sequence(value, partition_by, order_by, n) -%}
    {{ return(adapter.dispatch('trailing_sequence', 'nextbuy')(value, partition_by, order_by, n)) }}
{%- endmacro %}

{% macro default__trailing_sequence(value, partition_by, order_by, n) -%}
    array_to_string(
        list({{ value }}) over (
            partition by {{ partition_by }} order by {{ order_by }}
            rows between {{ n - 1 }} preceding and current row
        ),
        ';'
    )
{%- endmacro %}

{% macro bigquery__trailing_sequence(value, partition_by, order_by, n) -%}
    array_to_string(
        array_agg({{ value }}) over (
            partition by {{ partition_by }} order by {{ order_by }}
            rows between {{ n - 1 }} preceding and current row
        ),
        ';'
    )
{%- endmacro %}

{# Whole days from `start` to `end` (timestamps), as a number of elapsed days. #}
{% macro days_between(start, end) -%}
    {{ return(adapter.dispatch('days_between', 'nextbuy')(start, end)) }}
{%- endmacro %}

{% macro default__days_between(start, end) -%}
    (epoch({{ end }}) - epoch({{ start }})) / 86400.0
{%- endmacro %}

{% macro bigquery__days_between(start, end) -%}
    timestamp_diff({{ end }}, {{ start }}, second) / 86400.0
{%- endmacro %}

{# The value of a FLOAT64 column, NULL when it is NaN or infinite: such a price would make
   every sum and average over it NaN or infinite (staging's prices). #}
{% macro finite_or_null(column) -%}
    {{ return(adapter.dispatch('finite_or_null', 'nextbuy')(column)) }}
{%- endmacro %}

{% macro default__finite_or_null(column) -%}
    case when isfinite({{ column }}) then {{ column }} end
{%- endmacro %}

{% macro bigquery__finite_or_null(column) -%}
    case when not is_nan({{ column }}) and not is_inf({{ column }}) then {{ column }} end
{%- endmacro %}

{# BigQuery's partition_id (YYYYMMDD, or __NULL__) of a day-partitioned timestamp. #}
{% macro partition_id(column) -%}
    {{ return(adapter.dispatch('partition_id', 'nextbuy')(column)) }}
{%- endmacro %}

{% macro default__partition_id(column) -%}
    coalesce(strftime({{ column }}, '%Y%m%d'), '__NULL__')
{%- endmacro %}

{% macro bigquery__partition_id(column) -%}
    coalesce(format_timestamp('%Y%m%d', {{ column }}), '__NULL__')
{%- endmacro %}

{# Where the warehouse records the raw tables' partitions and when each last changed
   (read only by stg_thelook__partitions). #}
{% macro raw_partitions() -%}
    {{ return(adapter.dispatch('raw_partitions', 'nextbuy')()) }}
{%- endmacro %}

{% macro default__raw_partitions() -%}
    (
        select table_name, partition_id, total_rows, last_modified_time
        from {{ source('thelook_meta', 'partitions') }}
        where table_schema = '{{ var("raw_schema") }}'
    )
{%- endmacro %}

{% macro bigquery__raw_partitions() -%}
    (
        select table_name, partition_id, total_rows, last_modified_time
        from `{{ var('raw_database', target.database) }}`.`{{ var('raw_schema') }}`.INFORMATION_SCHEMA.PARTITIONS
    )
{%- endmacro %}

{# A SQL string literal; BigQuery escapes quotes with a backslash, DuckDB by doubling. #}
{% macro string_literal(text) -%}
    {{ return(adapter.dispatch('string_literal', 'nextbuy')(text)) }}
{%- endmacro %}

{% macro default__string_literal(text) -%}
    '{{ text | replace("'", "''") }}'
{%- endmacro %}

{% macro bigquery__string_literal(text) -%}
    '{{ text | replace("\\", "\\\\") | replace("'", "\\'") }}'
{%- endmacro %}

{# A comma-separated list of SQL string literals, for `in (...)`. #}
{% macro string_literals(texts) -%}
    {%- for text in texts %}{{ string_literal(text) }}{{ ', ' if not loop.last }}{% endfor -%}
{%- endmacro %}

{# The newest element of a ';'-joined sequence. #}
{% macro last_sequence_element(sequence) -%}
    {{ return(adapter.dispatch('last_sequence_element', 'nextbuy')(sequence)) }}
{%- endmacro %}

{% macro default__last_sequence_element(sequence) -%}
    string_split({{ sequence }}, ';')[-1]
{%- endmacro %}

{% macro bigquery__last_sequence_element(sequence) -%}
    array_reverse(split({{ sequence }}, ';'))[safe_offset(0)]
{%- endmacro %}
