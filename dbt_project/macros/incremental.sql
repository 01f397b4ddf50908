{#
  Incremental builds by daily partition of raw order_items.

  A customer's features depend on the whole of their history, so the unit of
  incremental work is the customer. `int_customer_changes` is an append-only log of the
  customers whose items sit in raw partitions that changed (new, re-delivered, corrected),
  stamped with the partitions' last_modified_time. Every other incremental model keeps a
  watermark in `_incremental_watermarks` (the last change it has processed) and on each
  run:
    1. pre-hook: deletes the rows of every customer logged after its watermark,
    2. select:   recomputes exactly those customers from their full history (appended),
    3. post-hook: moves its watermark to the newest logged change.
  Deleting first is what makes a customer whose purchases vanished (say, all items of a
  re-delivered day turned Cancelled) correct too; a failed run leaves the watermark
  behind, so the next run does the work again. A re-run with nothing new does nothing.
#}

{% macro watermarks_relation() -%}
    {{ return(api.Relation.create(
        database=target.database, schema='intermediate', identifier='_incremental_watermarks')) }}
{%- endmacro %}

{% macro create_watermarks_table() -%}
    create schema if not exists {{ watermarks_relation().without_identifier() }};
    create table if not exists {{ watermarks_relation() }} (
        model_name {{ dbt.type_string() }},
        processed_through {{ dbt.type_timestamp() }}
    )
{%- endmacro %}

{#
  The newest change this model has processed. When the build runs it is looked up first
  and written into the SQL as a literal: compared with a literal, changed_at prunes the
  change log by its zone maps, and the warehouse can push the changed customers into its
  scans of the large tables; behind a scalar subquery it can do neither. (When only
  parsing there is no warehouse to ask, and the lookup stays a subquery.)
#}
{% macro model_watermark() -%}
    {%- set lookup -%}
        select coalesce(max(processed_through), cast('1900-01-01' as {{ dbt.type_timestamp() }}))
        from {{ watermarks_relation() }}
        where model_name = '{{ this.identifier }}'
    {%- endset -%}
    {%- if execute -%}
        {{ timestamp_literal(run_query(lookup).columns[0].values()[0]) }}
    {%- else -%}
        ({{ lookup }})
    {%- endif -%}
{%- endmacro %}

{# A timestamp (a Python datetime, UTC) as a SQL literal, to the microsecond. #}
{% macro timestamp_literal(value) -%}
    cast('{{ value.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{# Customers changed since this model's watermark (a subquery). #}
{% macro changed_customers() -%}
    select customer_id
    from {{ ref('int_customer_changes') }}
    where changed_at > {{ model_watermark() }}
{%- endmacro %}

{# In an incremental build, keep only the changed customers' rows of an import CTE. #}
{% macro where_changed_customers(column='customer_id') -%}
    {%- if is_incremental() %}
    where {{ column }} in ({{ changed_customers() }})
    {%- endif %}
{%- endmacro %}

{#
  The keyword that makes an import CTE filtered by where_changed_customers() be
  computed once, first: `orders as {{ changed_customers_import() }} (...)`. In an
  incremental build DuckDB then filters the large table by the changed customers as it
  scans it, instead of joining all of it first and filtering the join's output (the
  difference between reading 156 thousand and 5.9 million history rows for one new day
  at 10M order items). Nothing in a full build, where it would only copy the table, or
  on BigQuery, which has no such hint.
#}
{% macro changed_customers_import() -%}
    {{ return(adapter.dispatch('changed_customers_import', 'nextbuy')()) }}
{%- endmacro %}

{% macro default__changed_customers_import() -%}
    {{ 'materialized' if is_incremental() }}
{%- endmacro %}

{% macro bigquery__changed_customers_import() -%}
{%- endmacro %}

{% macro customer_incremental_config() -%}
    {{ return({
        'materialized': 'incremental',
        'incremental_strategy': 'merge' if target.type == 'bigquery' else 'append',
        'on_schema_change': 'fail',
        'pre_hook': "{% if is_incremental() %}delete from {{ this }} where customer_id in ({{ changed_customers() }}){% endif %}",
        'post_hook': "insert into {{ watermarks_relation() }} (model_name, processed_through) select '{{ this.identifier }}', max(changed_at) from {{ ref('int_customer_changes') }}",
    }) }}
{%- endmacro %}

{# The ids of the raw order_items partitions changed since this model's last run. #}
{% macro changed_partition_ids() -%}
    {%- set lookup -%}
        select partition_id
        from {{ ref('stg_thelook__partitions') }}
        where
            table_name = 'order_items'
            -- (An empty log, as a first build on an empty raw leaves it, means everything.)
            and last_modified_time > (
                select coalesce(max(partitions_modified_at), cast('1900-01-01' as {{ dbt.type_timestamp() }}))
                from {{ this }}
            )
        order by partition_id
    {%- endset -%}
    {{ return(run_query(lookup).columns[0].values() | list if execute else []) }}
{%- endmacro %}

{#
  A condition on a raw timestamp column that holds for every row of the given daily
  partitions (YYYYMMDD, or __NULL__ for rows without one): a range from the first day to
  the end of the last, which the warehouse can prune on. It may hold for rows of other
  days in between too; the caller filters on the partition ids as well.
#}
{% macro partitions_created_at_bounds(column, partition_ids) -%}
    {%- set days = [] -%}
    {%- for id in partition_ids if id | length == 8 and id.isdigit() -%}
        {%- do days.append(id) -%}
    {%- endfor -%}
    {%- set days = days | sort -%}
    {%- set conditions = [] -%}
    {%- if days -%}
        {%- set first = modules.datetime.datetime.strptime(days[0], '%Y%m%d') -%}
        {%- set end = modules.datetime.datetime.strptime(days[-1], '%Y%m%d') + modules.datetime.timedelta(days=1) -%}
        {%- do conditions.append('(' ~ column ~ ' >= ' ~ timestamp_literal(first) ~ ' and ' ~ column ~ ' < ' ~ timestamp_literal(end) ~ ')') -%}
    {%- endif -%}
    {%- if '__NULL__' in partition_ids -%}
        {%- do conditions.append('(' ~ column ~ ' is null)') -%}
    {%- endif -%}
    ({{ conditions | join(' or ') if conditions else 'true' }})
{%- endmacro %}

{# The newest raw order_items partition change, for rows to record what they were built from. #}
{% macro source_modified_at() -%}
    (
        select max(last_modified_time)
        from {{ ref('stg_thelook__partitions') }} as partitions
        where table_name = 'order_items'
    )
{%- endmacro %}
