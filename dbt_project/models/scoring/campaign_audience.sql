{%- set as_of = as_of_var() -%}

with

scores as (

    select * from {{ ref('stg_ml__customer_scores') }}

),

users as (

    select * from {{ ref('stg_thelook__users') }}

),

features as (

    select
        customer_id,
        prior_target_brand_share,
        days_since_last_order,
        cast(as_of as date) as as_of

    from {{ ref('customer_features') }}

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

    -- Equal scores are common (a rule champion gives a whole group one score), so the
    -- order among them decides who is in: first the customers who already bought the
    -- target brands most (their share of past items), then those who bought most
    -- recently; the id only orders what is still equal. The features are those of the
    -- same as_of (customer_features holds the date scored last); for an older date they
    -- are missing and the id decides.
    select
        scores.customer_id,
        scores.score,
        scores.decile,
        features.prior_target_brand_share,
        features.days_since_last_order,
        scores.model_name,
        scores.model_version,
        scores.as_of,
        row_number() over (
            order by
                scores.score desc,
                features.prior_target_brand_share desc nulls last,
                features.days_since_last_order asc nulls last,
                scores.customer_id asc
        ) as audience_rank,
        count(*) over () as scored_customers

    from scores
    inner join latest on scores.as_of = latest.as_of
    left join features
        on
            scores.customer_id = features.customer_id
            and scores.as_of = features.as_of

),

final as (

    select
        ranked.customer_id,
        users.email,
        users.first_name,
        users.last_name,
        users.country,
        ranked.score,
        ranked.decile,
        ranked.audience_rank,
        ranked.prior_target_brand_share,
        ranked.days_since_last_order,
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
