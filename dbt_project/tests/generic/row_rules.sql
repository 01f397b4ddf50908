{#- Rules beyond a column's own values; each returns the offending rows. -#}

{#- A count or a span of a row that includes another of the same row:
    prior_items >= prior_orders. -#}
{% test at_least(model, column_name, other_column) %}
    select {{ column_name }}, {{ other_column }}
    from {{ model }}
    where {{ column_name }} < {{ other_column }}
{% endtest %}

{#- One value in the whole table (customer_features: one as_of per build). -#}
{% test single_value(model, column_name) %}
    with values_seen as (
        select count(distinct {{ column_name }}) as distinct_values
        from {{ model }}
    )
    select distinct_values from values_seen where distinct_values > 1
{% endtest %}
