{#
  Incremental builds by daily partition of raw order_items.

  A customer's features depend on the whole of their history, so the unit of
  incremental work is the customer. `int_customer_changes` is an append-only log of the
  customers whose items sit in raw partitions that changed (new, re-delivered, corrected),
  stamped with the partitions' last_modified_time. Every other incremental model keeps a
  watermark in `_incremental_watermarks` (the last change it has processed) and on each
  run:
    1. pre-hook: deletes the rows of every customer logged after its watermark,
    2. select:   recomputes exactly those customers from their full history (appended),
    3. post-hook: moves its watermark to the newest logged change.
  Deleting first is what makes a customer whose purchases vanished (say, all items of a
  re-delivered day turned Cancelled) correct too; a failed run leaves the watermark
  behind, so the next run does the work again. A re-run with nothing new does nothing.

  The catalogue is the other input every customer's features read (brand, department,
  category). It has no partitions, so `int_customer_changes` keeps a fingerprint of each
  product's feature columns in `_product_fingerprints` as of its last run, and also logs
  the customers who bought a product whose fingerprint changed (or that appeared or
  vanished). Users and orders rows are assumed to change only with their items' day
  partition, as in thelook's exports; `--vars '{partitions: [...]}'` or `--full-refresh`
  rebuilds after any other edit.
#}

{% macro watermarks_relation() -%}
    {{ return(api.Relation.create(
        database=target.database, schema='intermediate', identifier='_incremental_watermarks')) }}
{%- endmacro %}

{% macro product_fingerprints_relation() -%}
    {{ return(api.Relation.create(
        database=target.database, schema='intermediate', identifier='_product_fingerprints')) }}
{%- endmacro %}

{# The state tables of incremental builds and scoped tests (an on-run-start hook). #}
{% macro create_incremental_state_tables() -%}
    create schema if not exists {{ watermarks_relation().without_identifier() }};
    create table if not exists {{ watermarks_relation() }} (
        model_name {{ dbt.type_string() }},
        processed_through {{ dbt.type_timestamp() }}
    );
    create table if not exists {{ product_fingerprints_relation() }} (
        product_id {{ dbt.type_bigint() }},
        fingerprint {{ dbt.type_string() }}
    );
    create table if not exists {{ data_test_watermarks_relation() }} (
        test_id {{ dbt.type_string() }},
        tested_through {{ dbt.type_timestamp() }}
    )
{%- endmacro %}

{# A product's feature columns as one string, NULLs told apart from any text. #}
{% macro product_fingerprint() -%}
    {{ return(adapter.dispatch('product_fingerprint', 'nextbuy')()) }}
{%- endmacro %}

{% macro default__product_fingerprint() -%}
    cast(hash(brand, department, category) as {{ dbt.type_string() }})
{%- endmacro %}

{% macro bigquery__product_fingerprint() -%}
    cast(farm_fingerprint(to_json_string(struct(brand, department, category))) as string)
{%- endmacro %}

{# Catalogue products whose feature columns differ from int_customer_changes' last run
   (new, changed or gone): a query. #}
{% macro changed_products() -%}
    select coalesce(current_products.product_id, seen.product_id) as product_id
    from (
        select product_id, {{ product_fingerprint() }} as fingerprint
        from {{ ref('stg_thelook__products') }}
    ) as current_products
    full outer join {{ product_fingerprints_relation() }} as seen
        on current_products.product_id = seen.product_id
    where
        current_products.fingerprint is null
        or seen.fingerprint is null
        or current_products.fingerprint != seen.fingerprint
{%- endmacro %}

{# Whether any product changed since int_customer_changes' last run (looked up first). #}
{% macro any_product_changed() -%}
    {%- set lookup -%}
        select count(*) from ({{ changed_products() }}) as changed
    {%- endset -%}
    {{ return(lookup_values(lookup)[0] > 0 if execute else false) }}
{%- endmacro %}

{# The first column of a query's result, looked up while the build runs, as a list
   (empty when only parsing, with no warehouse to ask). #}
{% macro lookup_values(sql) -%}
    {{ return(run_query(sql).columns[0].values() | list if execute else []) }}
{%- endmacro %}

{# Records the catalogue as int_customer_changes has now seen it (its post-hook). #}
{% macro record_product_fingerprints() -%}
    delete from {{ product_fingerprints_relation() }} where true;
    insert into {{ product_fingerprints_relation() }} (product_id, fingerprint)
    select product_id, {{ product_fingerprint() }}
    from {{ ref('stg_thelook__products') }}
{%- endmacro %}

{#
  The newest change this model has processed. When the build runs it is looked up first
  and written into the SQL as a literal: compared with a literal, changed_at prunes the
  change log by its zone maps, and the warehouse can push the changed customers into its
  scans of the large tables; behind a scalar subquery it can do neither. (When only
  parsing there is no warehouse to ask, and the lookup stays a subquery.)
#}
{% macro model_watermark() -%}
    {%- set lookup -%}
        select coalesce(max(processed_through), cast('1900-01-01' as {{ dbt.type_timestamp() }}))
        from {{ watermarks_relation() }}
        where model_name = '{{ this.identifier }}'
    {%- endset -%}
    {%- if execute -%}
        {{ timestamp_literal(lookup_values(lookup)[0]) }}
    {%- else -%}
        ({{ lookup }})
    {%- endif -%}
{%- endmacro %}

{# A timestamp (a Python datetime, UTC) as a SQL literal, to the microsecond. #}
{% macro timestamp_literal(value) -%}
    cast('{{ value.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{# Customers changed since this model's watermark (a subquery). #}
{% macro changed_customers() -%}
    select customer_id
    from {{ ref('int_customer_changes') }}
    where changed_at > {{ model_watermark() }}
{%- endmacro %}

{# In an incremental build, keep only the changed customers' rows of an import CTE. #}
{% macro where_changed_customers(column='customer_id') -%}
    {%- if is_incremental() %}
    where {{ column }} in ({{ changed_customers() }})
    {%- endif %}
{%- endmacro %}

{#
  The keyword that makes an import CTE filtered by where_changed_customers() be
  computed once, first: `orders as {{ changed_customers_import() }} (...)`. In an
  incremental build DuckDB then filters the large table by the changed customers as it
  scans it, instead of joining all of it first and filtering the join's output (the
  difference between reading 156 thousand and 5.9 million history rows for one new day
  at 10M order items). Nothing in a full build, where it would only copy the table, or
  on BigQuery, which has no such hint.
#}
{% macro changed_customers_import() -%}
    {{ return(adapter.dispatch('changed_customers_import', 'nextbuy')()) }}
{%- endmacro %}

{% macro default__changed_customers_import() -%}
    {{ 'materialized' if is_incremental() }}
{%- endmacro %}

{% macro bigquery__changed_customers_import() -%}
{%- endmacro %}

{#
  The config of a model rebuilt by customer (see the top of this file). `recompute` is a
  macro call (text, rendered in the pre-hook) giving the condition on the rows to delete
  before the select recomputes them; `then` an optional statement (a macro call) run
  after that delete; `test_scope` what its data tests read (scoped_tests.sql), none for
  whole tables. customer_features passes all three (macros/customer_features.sql).
#}
{% macro customer_incremental_config(recompute=none, then=none, test_scope='changed_customers') -%}
    {%- set condition = '{{ ' ~ recompute ~ ' }}' if recompute else 'customer_id in ({{ changed_customers() }})' -%}
    {%- set pre_hooks = ["{% if is_incremental() %}delete from {{ this }} where " ~ condition ~ "{% endif %}"] -%}
    {%- if then -%}
        {%- do pre_hooks.append("{% if is_incremental() %}{{ " ~ then ~ " }}{% endif %}") -%}
    {%- endif -%}
    {{ return({
        'materialized': 'incremental',
        'incremental_strategy': 'merge' if target.type == 'bigquery' else 'append',
        'on_schema_change': 'fail',
        'pre_hook': pre_hooks,
        'post_hook': "insert into {{ watermarks_relation() }} (model_name, processed_through) select '{{ this.identifier }}', max(changed_at) from {{ ref('int_customer_changes') }}",
        'meta': {'test_scope': test_scope} if test_scope else {},
    }) }}
{%- endmacro %}

{# The ids of the raw order_items partitions changed since this model's last run. #}
{% macro changed_partition_ids() -%}
    {#- (An empty log, as a first build on an empty raw leaves it, means everything.) -#}
    {%- set since -%}
        (
            select coalesce(max(partitions_modified_at), cast('1900-01-01' as {{ dbt.type_timestamp() }}))
            from {{ this }}
        )
    {%- endset -%}
    {{ return(partition_ids_modified_after(ref('stg_thelook__partitions'), since)) }}
{%- endmacro %}

{# The ids of the raw order_items partitions (in `partitions`, stg_thelook__partitions)
   whose last_modified_time is after `since` (SQL), looked up, in order. #}
{% macro partition_ids_modified_after(partitions, since) -%}
    {%- set lookup -%}
        select partition_id
        from {{ partitions }}
        where table_name = 'order_items' and last_modified_time > {{ since }}
        order by partition_id
    {%- endset -%}
    {{ return(lookup_values(lookup)) }}
{%- endmacro %}

{#
  A condition on a raw timestamp column that holds for every row of the given daily
  partitions (YYYYMMDD, or __NULL__ for rows without one): a range from the first day to
  the end of the last, which the warehouse can prune on. It may hold for rows of other
  days in between too; the caller filters on the partition ids as well.
#}
{% macro partitions_created_at_bounds(column, partition_ids) -%}
    {%- set days = [] -%}
    {%- for id in partition_ids if id | length == 8 and id.isdigit() -%}
        {%- do days.append(id) -%}
    {%- endfor -%}
    {%- set days = days | sort -%}
    {%- set conditions = [] -%}
    {%- if days -%}
        {%- set first = modules.datetime.datetime.strptime(days[0], '%Y%m%d') -%}
        {%- set end = modules.datetime.datetime.strptime(days[-1], '%Y%m%d') + modules.datetime.timedelta(days=1) -%}
        {%- do conditions.append('(' ~ column ~ ' >= ' ~ timestamp_literal(first) ~ ' and ' ~ column ~ ' < ' ~ timestamp_literal(end) ~ ')') -%}
    {%- endif -%}
    {%- if '__NULL__' in partition_ids -%}
        {%- do conditions.append('(' ~ column ~ ' is null)') -%}
    {%- endif -%}
    ({{ conditions | join(' or ') if conditions else 'true' }})
{%- endmacro %}

{# The newest raw order_items partition change, for rows to record what they were built from. #}
{% macro source_modified_at() -%}
    (
        select max(last_modified_time)
        from {{ ref('stg_thelook__partitions') }} as partitions
        where table_name = 'order_items'
    )
{%- endmacro %}
