{#- The order items quarantined as future-dated (macros/future_dated.sql): dated more
    than the tolerance after raw received their day partition. -#}
with

source as (

    select * from {{ source('thelook', 'order_items') }}

),

partitions as (

    select * from {{ ref('stg_thelook__partitions') }}
    where table_name = 'order_items'

),

items as (

    select
        id as order_item_id,
        order_id,
        user_id as customer_id,
        created_at,
        {{ partition_id('created_at') }} as partition_id

    from source
    where
        id is not null
        -- No row can be later than the oldest receipt plus the tolerance and still be
        -- in time: a cheap first cut before the day of each row is computed.
        and created_at > (
            select {{ dbt.dateadd('day', future_dated_tolerance_days(), 'min(last_modified_time)') }}
            from partitions
        )

),

final as (

    select
        items.order_item_id,
        items.order_id,
        items.customer_id,
        items.created_at,
        items.partition_id,
        partitions.last_modified_time as received_at

    from items
    inner join partitions on items.partition_id = partitions.partition_id
    where
        items.created_at
        > {{ dbt.dateadd('day', future_dated_tolerance_days(), 'partitions.last_modified_time') }}

)

select * from final
