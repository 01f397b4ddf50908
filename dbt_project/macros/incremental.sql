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

{# The newest change this model has processed. #}
{% macro model_watermark() -%}
    (
        select coalesce(max(processed_through), cast('1900-01-01' as {{ dbt.type_timestamp() }}))
        from {{ watermarks_relation() }}
        where model_name = '{{ this.identifier }}'
    )
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

{% macro customer_incremental_config() -%}
    {{ return({
        'materialized': 'incremental',
        'incremental_strategy': 'merge' if target.type == 'bigquery' else 'append',
        'on_schema_change': 'fail',
        'pre_hook': "{% if is_incremental() %}delete from {{ this }} where customer_id in ({{ changed_customers() }}){% endif %}",
        'post_hook': "insert into {{ watermarks_relation() }} (model_name, processed_through) select '{{ this.identifier }}', max(changed_at) from {{ ref('int_customer_changes') }}",
    }) }}
{%- endmacro %}

{# The newest raw order_items partition change, for rows to record what they were built from. #}
{% macro source_modified_at() -%}
    (
        select max(last_modified_time)
        from {{ ref('stg_thelook__partitions') }} as partitions
        where table_name = 'order_items'
    )
{%- endmacro %}
