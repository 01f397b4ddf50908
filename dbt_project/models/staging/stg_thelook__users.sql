with

source as (

    select * from {{ source('thelook', 'users') }}

),

renamed as (

    select
        id as customer_id,
        {{ clean_text('first_name') }} as first_name,
        {{ clean_text('last_name') }} as last_name,
        lower({{ clean_text('email') }}) as email,
        age,
        upper({{ clean_text('gender') }}) as gender,
        {{ clean_text('city') }} as city,
        {{ clean_text('state') }} as state,
        {{ clean_text('country') }} as country,
        {{ clean_text('traffic_source') }} as traffic_source,
        created_at as signed_up_at

    from source

),

final as (

    select
        customer_id,
        first_name,
        last_name,
        email,
        -- The generator's range; anything outside it is an entry error, not a customer.
        case when age between 0 and 120 then age end as age,
        case when gender in ('F', 'M') then gender end as gender,
        city,
        state,
        -- Exports mix English and native country names for the same country.
        case country
            when 'España' then 'Spain'
            when 'Deutschland' then 'Germany'
            else country
        end as country,
        traffic_source,
        signed_up_at

    from renamed
    where customer_id is not null

)

select * from final
