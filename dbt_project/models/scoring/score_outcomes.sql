{#- int_score_outcomes with the data clock: how far the warehouse's purchases reach, the
    same on every row, and so how many days of purchases each as-of date has seen. A view:
    the clock moves with every new day of purchases, for every row. -#}
{{ config(materialized='view', schema='marts') }}

with

outcomes as (

    select * from {{ ref('int_score_outcomes') }}

),

orders as (

    select * from {{ ref('int_orders') }}

),

data_clock as (

    -- The newest purchase the warehouse holds: outcomes are observed up to it.
    select max(ordered_at) as observed_until from orders

),

final as (

    select
        outcomes.customer_id,
        outcomes.as_of,
        outcomes.source,
        outcomes.model_name,
        outcomes.model_version,
        outcomes.score,
        outcomes.decile,
        outcomes.requested_at,
        outcomes.next_order_id,
        outcomes.next_ordered_at,
        outcomes.next_order_has_target_brand,
        outcomes.days_to_next_order,
        data_clock.observed_until,
        {{ days_between('cast(outcomes.as_of as ' ~ dbt.type_timestamp() ~ ')', 'data_clock.observed_until') }} as days_observed

    from outcomes
    cross join data_clock

)

select * from final
