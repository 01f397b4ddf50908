-- depends_on: {{ ref('int_customer_changes') }}
{{ config(**customer_incremental_config()) }}

{%- set n = required_var('sequence_length') %}
{%- set customer_items = "partition by customer_id order by item_number" %}

with

purchase_items as {{ changed_customers_import() }} (

    select * from {{ ref('int_purchase_items') }}
    {{ where_changed_customers() }}

),

first_purchases as (

    select
        *,
        -- The customer's first item of the brand: counting these counts distinct brands
        -- with a running sum (BigQuery has no DISTINCT in window aggregates).
        row_number() over (
            partition by customer_id, brand order by item_number
        ) = 1 as is_first_of_brand

    from purchase_items

),

running as (

    select
        customer_id,
        order_id,
        order_number,
        ordered_at,
        item_number,
        sale_price as last_item_price,
        sum(sale_price) over (
            {{ customer_items }} rows between unbounded preceding and current row
        ) as price_sum_through,
        -- Items without a usable price (staging's NULL for NaN or infinite) count as items
        -- but not in the average price.
        count(sale_price) over (
            {{ customer_items }} rows between unbounded preceding and current row
        ) as priced_items_through,
        -- Counts rather than sums of 1s: the same numbers, and INT64 everywhere (DuckDB
        -- sums integers into HUGEINT, which the BigQuery emulator reports as NUMERIC).
        count(case when is_target_brand then 1 end) over (
            {{ customer_items }} rows between unbounded preceding and current row
        ) as target_items_through,
        count(case when is_target_brand and is_first_of_brand then 1 end) over (
            {{ customer_items }} rows between unbounded preceding and current row
        ) as target_brands_through,
        {{ trailing_sequence('brand', 'customer_id', 'item_number', n) }} as brand_sequence,
        {{ trailing_sequence('department', 'customer_id', 'item_number', n) }} as department_sequence,
        {{ trailing_sequence('category', 'customer_id', 'item_number', n) }} as category_sequence,
        row_number() over (
            partition by customer_id, order_number order by item_number desc
        ) as items_after_in_order

    from first_purchases

),

final as (

    select
        customer_id,
        order_number,
        order_id,
        ordered_at as last_order_at,
        min(ordered_at) over (partition by customer_id) as first_order_at,
        item_number as items_through,
        target_items_through,
        target_brands_through,
        price_sum_through / nullif(priced_items_through, 0) as avg_item_price_through,
        last_item_price,
        brand_sequence,
        department_sequence,
        category_sequence,
        {{ source_modified_at() }} as _source_modified_at

    from running
    -- The state after an order is the running state at its last item.
    where items_after_in_order = 1

)

select * from final
