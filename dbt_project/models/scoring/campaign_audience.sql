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

day_scores as (

    select scores.*
    from scores
    inner join latest on scores.as_of = latest.as_of

),

counted as (

    select ceil(count(*) * {{ required_var('audience_top_percent') }} / 100.0) as audience_size
    from day_scores

),

cut_score as (

    -- The score at the cut: the audience_size-th best. Only customers scored at least as
    -- high can be in, so the full order below (a join to the features and a sort on four
    -- keys) is taken over them alone, not over every customer of the date: the same
    -- ranks, since everybody left out ranks below all of them.
    select min(positioned.score) as score

    from (
        select
            score,
            row_number() over (order by score desc) as score_position
        from day_scores
    ) as positioned
    cross join counted
    where positioned.score_position <= counted.audience_size

),

ranked as (

    -- Equal scores are common (a rule champion gives a whole group one score), so the
    -- order among them decides who is in: first the customers who already bought the
    -- target brands most (their share of past items), then those who bought most
    -- recently; the id only orders what is still equal. The features are those of the
    -- same as_of (customer_features holds the date scored last); for an older date they
    -- are missing and the id decides.
    select
        day_scores.customer_id,
        day_scores.score,
        day_scores.decile,
        features.prior_target_brand_share,
        features.days_since_last_order,
        day_scores.model_name,
        day_scores.model_version,
        day_scores.as_of,
        row_number() over (
            order by
                day_scores.score desc,
                features.prior_target_brand_share desc nulls last,
                features.days_since_last_order asc nulls last,
                day_scores.customer_id asc
        ) as audience_rank,
        counted.audience_size

    from day_scores
    inner join cut_score on day_scores.score >= cut_score.score
    cross join counted
    left join features
        on
            day_scores.customer_id = features.customer_id
            and day_scores.as_of = features.as_of

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
    where ranked.audience_rank <= ranked.audience_size

)

select * from final
