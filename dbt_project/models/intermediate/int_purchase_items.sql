-- depends_on: {{ ref('int_customer_changes') }}
{{ config(**customer_incremental_config()) }}

with

order_items as {{ changed_customers_import() }} (

    select * from {{ ref('stg_thelook__order_items') }}
    {{ where_changed_customers() }}

),

orders as {{ changed_customers_import() }} (

    select * from {{ ref('int_orders') }}
    {{ where_changed_customers() }}

),

products as (

    select * from {{ ref('stg_thelook__products') }}

),

purchased as (

    select
        orders.customer_id,
        orders.order_id,
        orders.order_number,
        orders.ordered_at,
        order_items.order_item_id,
        order_items.created_at as item_created_at,
        order_items.sale_price,
        -- An item whose product is not in the catalogue still happened; it just has no
        -- known brand, department or category.
        coalesce(products.brand, 'Unknown') as brand,
        coalesce(products.department, 'Unknown') as department,
        coalesce(products.category, 'Unknown') as category,
        {{ is_target_brand('products.brand') }} as is_target_brand

    from order_items
    inner join orders on order_items.order_id = orders.order_id
    left join products on order_items.product_id = products.product_id
    where not order_items.is_cancelled

),

final as (

    select
        *,
        row_number() over (
            partition by customer_id order by order_number, item_created_at, order_item_id
        ) as item_number,
        {{ source_modified_at() }} as _source_modified_at

    from purchased

)

select * from final
