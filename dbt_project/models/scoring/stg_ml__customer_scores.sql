with

source as (

    select * from {{ source('ml', 'customer_scores') }}

),

final as (

    select
        customer_id,
        cast(score as {{ dbt.type_float() }}) as score,
        decile,
        model_name,
        model_version,
        as_of,
        scored_at

    from source

)

select * from final
