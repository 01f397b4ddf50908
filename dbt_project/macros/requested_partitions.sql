{#
  The raw order_items day partitions a build was asked to process, as a list of ids
  (YYYYMMDD), or none when it was not asked (dbt then finds the changed ones itself).
  From var `partitions` or, as `nextbuy` passes it, env NEXTBUY_PARTITIONS (comma
  separated): the days change every run, and a changed var makes dbt re-parse the whole
  project, an env var only the files whose parse read it; read only while executing, it
  makes dbt re-parse nothing (as_of_timestamp() in campaign.sql).
#}
{% macro requested_partitions() -%}
    {%- if var('partitions', none) is not none -%}
        {{ return(var('partitions') | map('string') | list) }}
    {%- endif -%}
    {%- set listed = (env_var('NEXTBUY_PARTITIONS', '') if execute else '') | trim -%}
    {%- if not listed -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(listed.split(',') | map('trim') | reject('equalto', '') | list) }}
{%- endmacro %}
