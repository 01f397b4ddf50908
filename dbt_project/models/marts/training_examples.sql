-- depends_on: {{ ref('int_customer_changes') }}
{{ config(**customer_incremental_config()) }}

{#- `examples: last_order` is the notebook's formulation: one example per customer, from
    their last purchase. The default, `every_order`, gives one per purchase k >= 2. -#}
{%- set formulation = var('examples', 'every_order') %}
{%- if formulation not in ('every_order', 'last_order') %}
    {{ exceptions.raise_compiler_error("var 'examples' must be every_order or last_order, not " ~ formulation) }}
{%- endif %}

with

orders as {{ changed_customers_import() }} (

    select * from {{ ref('int_orders') }}
    {{ where_changed_customers() }}

),

history as {{ changed_customers_import() }} (

    select * from {{ ref('int_customer_history') }}
    {{ where_changed_customers() }}

),

users as {{ changed_customers_import() }} (

    select * from {{ ref('stg_thelook__users') }}
    {{ where_changed_customers() }}

),

numbered as (

    select
        *,
        max(order_number) over (partition by customer_id) as customer_orders

    from orders

),

anchors as (

    select
        customer_id,
        order_id,
        ordered_at as as_of,
        -- `label` is the column contract's name, keyword or not.
        has_target_brand as label,  -- noqa: RF04
        order_number - 1 as history_order_number

    from numbered
    where order_number >= 2
    {% if formulation == 'last_order' %}
        and order_number = customer_orders
    {% endif %}

),

features as (

    {{ purchase_features('anchors', before_as_of=['order_id'], after_as_of=['label']) }}

),

final as (

    select
        *,
        {{ source_modified_at() }} as _source_modified_at

    from features

)

select * from final
