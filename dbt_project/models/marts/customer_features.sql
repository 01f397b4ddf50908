with

history as (

    select * from {{ ref('int_customer_history') }}

),

users as (

    select * from {{ ref('stg_thelook__users') }}

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

    {{ purchase_features('anchors') }}

)

select * from final
