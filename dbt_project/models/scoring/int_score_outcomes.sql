{#- What became of every published score: the customer's next purchase after the as-of
    date, judged as training_examples judge purchase k (int_orders: an order with a
    non-cancelled item, timed by the order, positive when a non-cancelled item is of a
    target brand), and how many days after the as-of date it came. Batch and online
    scores are put together first (`source`), so one join judges both. How many days the
    warehouse has seen since each date moves every day for every row: score_outcomes, the
    view over this table, adds it when read. The label horizon (parameters.yaml
    monitoring.label_horizon_days) is applied by the asset that reads score_outcomes
    (orchestration/defs/monitoring/realised.py), so a changed horizon needs no rebuild.

    Incremental, since a row's outcome changes only with its customer's purchases or its
    date's scores: every day adds a date of scores for every customer, so rebuilding all
    of them made the daily run grow with the number of dates scored
    (macros/score_outcomes.sql says which rows a build recomputes). -#}
{{ config(
    materialized='incremental',
    schema='intermediate',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'append'),
    on_schema_change='fail',
    meta={'test_scope': 'built_rows'},
    pre_hook="{% if is_incremental() %}delete from {{ this }} where {{ score_outcomes_recompute() }}{% endif %}",
    post_hook="insert into {{ watermarks_relation() }} (model_name, processed_through) select '{{ this.identifier }}', max(changed_at) from {{ ref('int_customer_changes') }}",
) }}

{%- set recompute = score_outcomes_recompute() %}

with

scores as (

    select * from {{ ref('stg_ml__customer_scores') }}
    where {{ recompute }}

),

online_predictions as (

    select * from {{ ref('stg_ml__online_predictions') }}

),

orders as (

    select * from {{ ref('int_orders') }}

),

latest_online as (

    -- A customer asked for several times on one as_of date: the latest answer is the one
    -- judged, as the latest publication of a date is for the batch.
    select
        *,
        row_number() over (
            partition by customer_id, as_of
            order by requested_at desc, model_version desc, features_hash desc
        ) as recency

    from online_predictions
    where {{ recompute }}

),

scored as (

    select
        customer_id,
        as_of,
        'batch' as source,  -- noqa: RF04
        model_name,
        model_version,
        score,
        decile,
        cast(null as {{ dbt.type_timestamp() }}) as requested_at,
        scored_at,
        -- customer_features see the purchases before the start of the as-of day (UTC):
        -- the next purchase is the first from that instant on.
        cast(as_of as {{ dbt.type_timestamp() }}) as scored_from

    from scores

    union all

    select
        customer_id,
        as_of,
        'online' as source,  -- noqa: RF04
        model_name,
        model_version,
        score,
        cast(null as {{ dbt.type_int() }}) as decile,
        requested_at,
        cast(null as {{ dbt.type_timestamp() }}) as scored_at,
        cast(as_of as {{ dbt.type_timestamp() }}) as scored_from

    from latest_online
    where recency = 1

),

scored_days as (

    -- The next purchase depends on the customer and the date, not on who scored them.
    select distinct
        customer_id,
        as_of,
        scored_from

    from scored

),

first_scored as (

    select min(scored_from) as scored_from from scored_days

),

purchases as (

    -- Only purchases from the first scored date on can be anyone's next purchase: the
    -- joins below read days, not the whole history.
    select orders.*
    from orders
    inner join first_scored
        on orders.ordered_at >= first_scored.scored_from

),

next_order_numbers as (

    -- Purchases are numbered by (order time, order id): the first one from scored_from
    -- on has the smallest number.
    select
        scored_days.customer_id,
        scored_days.as_of,
        min(purchases.order_number) as order_number

    from scored_days
    inner join purchases
        on
            scored_days.customer_id = purchases.customer_id
            and scored_days.scored_from <= purchases.ordered_at
    group by scored_days.customer_id, scored_days.as_of

),

next_orders as (

    select
        next_order_numbers.customer_id,
        next_order_numbers.as_of,
        purchases.order_id,
        purchases.ordered_at,
        purchases.has_target_brand

    from next_order_numbers
    inner join purchases
        on
            next_order_numbers.customer_id = purchases.customer_id
            and next_order_numbers.order_number = purchases.order_number

),

final as (

    select
        scored.customer_id,
        scored.as_of,
        scored.source,
        scored.model_name,
        scored.model_version,
        scored.score,
        scored.decile,
        scored.requested_at,
        next_orders.order_id as next_order_id,
        next_orders.ordered_at as next_ordered_at,
        next_orders.has_target_brand as next_order_has_target_brand,
        {{ days_between('scored.scored_from', 'next_orders.ordered_at') }} as days_to_next_order,
        -- When the batch scores were published (NULL online): the next build recomputes
        -- the dates published since.
        scored.scored_at,
        -- When this row was written: a daily run tests only the rows it wrote.
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }}) as built_at

    from scored
    left join next_orders
        on
            scored.customer_id = next_orders.customer_id
            and scored.as_of = next_orders.as_of

)

select * from final
