{{ config(
    materialized='incremental',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'append'),
    on_schema_change='fail',
) }}

{#- `--vars '{partitions: [20240101, ...]}'` re-logs the customers of named partitions,
    to rebuild them without a full refresh. -#}

with

partitions as (

    select * from {{ ref('stg_thelook__partitions') }}

),

order_items as (

    select * from {{ ref('stg_thelook__order_items') }}

),

changed_partitions as (

    select
        partition_id,
        {{ partition_start('partition_id') }} as partition_start

    from partitions
    where table_name = 'order_items'
    {% if var('partitions', none) is not none %}
        and partition_id in ({% for p in var('partitions') %}'{{ p }}'{{ ', ' if not loop.last }}{% endfor %})
    {% elif is_incremental() %}
        and last_modified_time > (select max(partitions_modified_at) from {{ this }})
    {% endif %}

),

final as (

    select distinct
        order_items.customer_id,
        -- When this run logged the change (what downstream watermarks compare with)...
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }}) as changed_at,
        -- ...and the newest partition change it saw (what the next run compares with).
        {{ source_modified_at() }} as partitions_modified_at

    from order_items
    where
        order_items.partition_id in (select changed_partitions.partition_id from changed_partitions)
        -- Redundant with the line above, but a bound on the raw column itself lets the
        -- warehouse skip the old days (zone maps here, partition pruning in BigQuery).
        and (
            order_items.created_at >= (select min(changed_partitions.partition_start) from changed_partitions)
            or order_items.created_at is null
        )

)

select * from final
