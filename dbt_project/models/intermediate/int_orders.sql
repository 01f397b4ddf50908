-- depends_on: {{ ref('int_customer_changes') }}
{{ config(**customer_incremental_config()) }}

with

order_items as {{ changed_customers_import() }} (

    select * from {{ ref('stg_thelook__order_items') }}
    {{ where_changed_customers() }}

),

orders as {{ changed_customers_import() }} (

    select * from {{ ref('stg_thelook__orders') }}
    {{ where_changed_customers() }}

),

products as (

    select * from {{ ref('stg_thelook__products') }}

),

items_with_brand as (

    select
        order_items.order_id,
        order_items.customer_id,
        order_items.created_at,
        order_items.is_cancelled,
        {{ is_target_brand('products.brand') }} as is_target_brand

    from order_items
    left join products on order_items.product_id = products.product_id

),

orders_from_items as (

    select
        order_id,
        -- The items' customer: they, not the orders rows, are what every export has.
        min(customer_id) as customer_id,
        min(created_at) as first_item_at,
        sum(case when is_cancelled then 0 else 1 end) as purchased_items,
        max(case when not is_cancelled and is_target_brand then 1 else 0 end) as has_target_brand

    from items_with_brand
    group by order_id

),

purchases as (

    select
        orders_from_items.customer_id,
        orders_from_items.order_id,
        -- The order's own time; its earliest item's when the orders row is missing.
        coalesce(orders.ordered_at, orders_from_items.first_item_at) as ordered_at,
        orders_from_items.purchased_items,
        orders_from_items.has_target_brand

    from orders_from_items
    left join orders on orders_from_items.order_id = orders.order_id
    where orders_from_items.purchased_items > 0

),

final as (

    select
        customer_id,
        order_id,
        ordered_at,
        row_number() over (
            partition by customer_id order by ordered_at, order_id
        ) as order_number,
        purchased_items,
        has_target_brand,
        {{ source_modified_at() }} as _source_modified_at

    from purchases

)

select * from final
