with

source as (

    select * from {{ source('thelook', 'orders') }}

),

final as (

    select
        order_id,
        user_id as customer_id,
        {{ clean_text('status') }} as order_status,
        created_at as ordered_at,
        num_of_item as items_declared

    from source
    where order_id is not null

)

select * from final
