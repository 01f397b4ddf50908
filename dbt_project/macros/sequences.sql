{#
  How many items a ';'-joined sequence (brand_sequence and its twins) holds: 0 for the
  empty string, NULL for NULL. Plain SQL that DuckDB and BigQuery both read, so that the
  sequence tests need no dispatch.
#}
{% macro sequence_items(sequence) -%}
    case
        when {{ sequence }} = '' then 0
        else length({{ sequence }}) - length(replace({{ sequence }}, ';', '')) + 1
    end
{%- endmacro %}
