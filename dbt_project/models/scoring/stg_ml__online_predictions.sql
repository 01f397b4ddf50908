{#- The online predictions the Dagster asset ml/online_predictions brought from the
    server's log. Until it first runs (or in a warehouse built without it) the source
    table is absent: then no rows, with the same columns, so that score_outcomes builds
    either way. -#}
{%- set log = source('ml', 'online_predictions') -%}
{%- set brought = adapter.get_relation(
    database=log.database, schema=log.schema, identifier=log.identifier
) if execute else none -%}

with

source as (

    {%- if brought is not none %}
    select * from {{ log }}
    {%- else %}
    select
        cast(null as {{ dbt.type_bigint() }}) as customer_id,
        cast(null as date) as as_of,
        cast(null as {{ dbt.type_string() }}) as features_hash,
        cast(null as {{ dbt.type_float() }}) as score,
        cast(null as {{ dbt.type_string() }}) as model_name,
        cast(null as {{ dbt.type_string() }}) as model_version,
        cast(null as {{ dbt.type_string() }}) as path,  -- noqa: RF04
        cast(null as {{ dbt.type_timestamp() }}) as requested_at
    from (select 1 as placeholder) as empty_log
    where false
    {%- endif %}

),

final as (

    select
        customer_id,
        as_of,
        features_hash,
        cast(score as {{ dbt.type_float() }}) as score,
        model_name,
        model_version,
        path,
        requested_at

    from source

)

select * from final
