{%- set as_of = var('as_of', env_var('NEXTBUY_AS_OF', '')) -%}

with

scores as (

    select * from {{ ref('stg_ml__customer_scores') }}

),

users as (

    select * from {{ ref('stg_thelook__users') }}

),

last_scoring as (

    select max(scored_at) as scored_at from scores

),

latest as (

    {%- if as_of %}
    -- The audience of the as-of date the run is for (its Dagster partition).
    select cast({{ string_literal(as_of) }} as date) as as_of
    {%- else %}
    -- Run by hand without a date: the date scored last (the newest run's as-of date,
    -- which follows the data), not the largest date: other dates stay in customer_scores.
    select max(scores.as_of) as as_of
    from scores
    inner join last_scoring on scores.scored_at = last_scoring.scored_at
    {%- endif %}

),

ranked as (

    select
        scores.customer_id,
        scores.score,
        scores.decile,
        scores.model_name,
        scores.model_version,
        scores.as_of,
        row_number() over (order by scores.score desc, scores.customer_id asc) as audience_rank,
        count(*) over () as scored_customers

    from scores
    inner join latest on scores.as_of = latest.as_of

),

final as (

    select
        ranked.customer_id,
        users.first_name,
        users.last_name,
        users.country,
        ranked.score,
        ranked.decile,
        ranked.audience_rank,
        ranked.model_name,
        ranked.model_version,
        ranked.as_of

    from ranked
    left join users on ranked.customer_id = users.customer_id
    where
        ranked.audience_rank
        <= ceil(ranked.scored_customers * {{ required_var('audience_top_percent') }} / 100.0)

)

select * from final
