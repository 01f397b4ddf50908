with recursive

source as (

    select * from {{ source('thelook', 'products') }}

),

catalogue_text as (

    select brand as original from source
    union distinct
    select category from source
    union distinct
    select department from source
    union distinct
    select name from source

),

mojibake_repairs as (

    {{ mojibake_repairs() }}

),

repairing as (

    select
        original,
        original as repaired,
        0 as step

    from catalogue_text
    where {{ regexp_contains_mojibake('original') }}

    union all

    select
        repairing.original,
        replace(repairing.repaired, mojibake_repairs.broken, mojibake_repairs.fixed) as repaired,
        repairing.step + 1 as step

    from repairing
    inner join mojibake_repairs on repairing.step + 1 = mojibake_repairs.step

),

repaired as (

    select
        repairing.original,
        repairing.repaired

    from repairing
    where repairing.step = (select max(mojibake_repairs.step) from mojibake_repairs)

),

final as (

    select
        source.id as product_id,
        {{ clean_catalogue_text('coalesce(brand_fix.repaired, source.brand)') }} as brand,
        {{ clean_catalogue_text('coalesce(category_fix.repaired, source.category)') }} as category,
        {{ clean_catalogue_text('coalesce(department_fix.repaired, source.department)') }} as department,
        {{ clean_catalogue_text('coalesce(name_fix.repaired, source.name)') }} as product_name,
        {{ finite_or_null('source.retail_price') }} as retail_price,
        {{ finite_or_null('source.cost') }} as cost  -- noqa: RF04

    from source
    left join repaired as brand_fix on source.brand = brand_fix.original
    left join repaired as category_fix on source.category = category_fix.original
    left join repaired as department_fix on source.department = department_fix.original
    left join repaired as name_fix on source.name = name_fix.original
    where source.id is not null
    qualify row_number() over (partition by source.id order by source.retail_price) = 1

)

select * from final
