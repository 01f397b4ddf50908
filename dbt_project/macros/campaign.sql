{#
  Campaign settings arrive as vars from parameters.yaml (orchestration/dbt.py); a model
  that needs one and is run without it fails here, naming the var, instead of silently
  using a default written a second time.
#}

{% macro required_var(name) -%}
    {%- set value = var(name, none) -%}
    {%- if value is none -%}
        {{ exceptions.raise_compiler_error(
            "var '" ~ name ~ "' is not set: run dbt through `nextbuy dbt`, which passes "
            ~ "parameters.yaml as vars, or give --vars yourself") }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{# SQL boolean: is this (cleaned) brand one of the campaign's target brands? #}
{% macro is_target_brand(brand_column) -%}
    {%- set brands = required_var('target_brands') or ['__none__'] -%}
    coalesce({{ brand_column }} in ({{ string_literals(brands) }}), false)
{%- endmacro %}

{#
  The instant customer_features are computed as of: the start of the as-of day (UTC),
  from var `as_of` or, as `nextbuy` passes it, env NEXTBUY_AS_OF; default today. The env
  var is read only while executing: dbt re-parses a file whose parse read an env var that
  has changed since (the as-of date changes every day), and writes the manifest again,
  about 3 s of every daily dbt command for nothing.
#}
{% macro as_of_timestamp() -%}
    {%- set as_of = as_of_var() -%}
    {%- if not as_of -%}
        cast(current_date as timestamp)
    {%- else -%}
        cast({{ string_literal(as_of) }} as timestamp)
    {%- endif -%}
{%- endmacro %}

{# The as-of date asked for (YYYY-MM-DD), or '' when none was (see as_of_timestamp()). #}
{% macro as_of_var() -%}
    {{ return(var('as_of', none) or (env_var('NEXTBUY_AS_OF', '') if execute else '')) }}
{%- endmacro %}
