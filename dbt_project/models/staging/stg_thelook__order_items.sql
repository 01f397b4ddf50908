with

source as (

    select * from {{ source('thelook', 'order_items') }}

),

future_dated as (

    select * from {{ ref('stg_thelook__future_order_items') }}

),

final as (

    select
        id as order_item_id,
        order_id,
        user_id as customer_id,
        product_id,
        {{ clean_text('status') }} as item_status,
        coalesce({{ clean_text('status') }}, '') = 'Cancelled' as is_cancelled,
        created_at,
        {{ finite_or_null('sale_price') }} as sale_price,
        -- The raw table's day partition, as BigQuery's INFORMATION_SCHEMA names it.
        {{ partition_id('created_at') }} as partition_id

    from source
    where
        id is not null
        -- Quarantined: not yet true, so no feature or label may see it.
        and id not in (select future_dated.order_item_id from future_dated)

)

select * from final
