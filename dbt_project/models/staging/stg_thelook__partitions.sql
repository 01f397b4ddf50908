with

source as (

    {#- DuckDB: the loader's meta.partitions; BigQuery: the raw dataset's
        INFORMATION_SCHEMA.PARTITIONS (macro raw_partitions). -#}
    select * from {{ raw_partitions() }}

),

final as (

    select
        table_name,
        partition_id,
        total_rows,
        last_modified_time

    from source

)

select * from final
