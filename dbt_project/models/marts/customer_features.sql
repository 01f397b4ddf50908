with

history as (

    select * from {{ ref('int_customer_history') }}

),

users as (

    select * from {{ ref('stg_thelook__users') }}

),

anchors as (

    -- Each customer's last purchase strictly before the as-of instant.
    select
        customer_id,
        {{ as_of_timestamp() }} as as_of,
        max(order_number) as history_order_number

    from history
    where last_order_at < {{ as_of_timestamp() }}
    group by customer_id

),

final as (

    {{ purchase_features('anchors') }}

)

select * from final
