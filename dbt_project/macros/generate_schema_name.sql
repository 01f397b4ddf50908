{#
  Models land in the schema their folder names (staging, intermediate, marts), not in
  dbt's default <target schema>_<name>: analysts and the pipeline read `marts.*` in every
  environment. In BigQuery these are datasets of the target project.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name if custom_schema_name is not none else target.schema }}
{%- endmacro %}
