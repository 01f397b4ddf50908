-- depends_on: {{ ref('int_customer_changes') }}
{#- Incremental: a daily build recomputes the customers whose history changed or whose
    last purchase before as_of is another one now, and moves everyone else to the new
    as_of in place (macros/customer_features.sql). -#}
{{ config(**customer_incremental_config(
    recompute='customer_features_recompute()',
    then='customer_features_move_as_of()',
    test_scope=none,
)) }}

{%- set recomputed = customer_features_recompute() if is_incremental() else none %}

with

history as {{ changed_customers_import() }} (

    select * from {{ ref('int_customer_history') }}
    {%- if recomputed %}
    where {{ recomputed }}
    {%- endif %}

),

users as {{ changed_customers_import() }} (

    select * from {{ ref('stg_thelook__users') }}
    {%- if recomputed %}
    where {{ recomputed }}
    {%- endif %}

),

known_history as (

    -- Scores go to customers the shop knows: a purchase of a customer missing from
    -- users (int_orders.customer_id's warning) is a training example, never a score.
    select history.*

    from history
    inner join users on history.customer_id = users.customer_id

),

anchors as (

    -- Each customer's last purchase strictly before the as-of instant.
    select
        customer_id,
        {{ as_of_timestamp() }} as as_of,
        max(order_number) as history_order_number

    from known_history
    where last_order_at < {{ as_of_timestamp() }}
    group by customer_id

),

final as (

    {{ purchase_features('anchors', instants=true) }}

)

select * from final
