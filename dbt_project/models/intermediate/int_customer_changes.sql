{{ config(
    materialized='incremental',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'append'),
    on_schema_change='fail',
    post_hook="{{ record_product_fingerprints() }}",
    meta={'test_scope': 'change_log'},
) }}

{#- Which raw order_items partitions to log the customers of: all of them in a full build;
    `--vars '{partitions: [20240101, ...]}'` (or env NEXTBUY_PARTITIONS) names some, to rebuild them without a full
    refresh; otherwise those changed since the last run. The ids are looked up before
    the select and written into it as literals, with the days' bounds on created_at, so
    that the warehouse reads only those days (zone maps here, partition pruning in
    BigQuery) instead of computing every row's partition. -#}
{%- set changed = requested_partitions() %}
{%- if changed is none and is_incremental() %}
    {%- set changed = changed_partition_ids() %}
{%- endif %}
{#- ...and the customers of catalogue products whose features changed (incremental.sql). -#}
{%- set products_changed = is_incremental() and any_product_changed() %}

with

order_items as (

    select * from {{ ref('stg_thelook__order_items') }}

),

final as (

    select distinct
        order_items.customer_id,
        -- When this run logged the change (what downstream watermarks compare with)...
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }}) as changed_at,
        -- ...and the newest partition change it saw (what the next run compares with).
        {{ source_modified_at() }} as partitions_modified_at

    from order_items
    {%- if changed is not none %}
    where
    {%- if changed %}
        (
            order_items.partition_id in ({{ string_literals(changed) }})
            and {{ partitions_created_at_bounds('order_items.created_at', changed) }}
        )
    {%- else %}
        false
    {%- endif %}
    {%- if products_changed %}
        or order_items.product_id in ({{ changed_products() }})
    {%- endif %}
    {%- endif %}

)

select * from final
