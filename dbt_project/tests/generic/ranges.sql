{#- Range checks on numeric features; each returns the offending rows. -#}
{% test positive(model, column_name) %}
    select {{ column_name }} from {{ model }} where {{ column_name }} <= 0
{% endtest %}

{% test non_negative(model, column_name) %}
    select {{ column_name }} from {{ model }} where {{ column_name }} < 0
{% endtest %}

{% test share(model, column_name) %}
    select {{ column_name }} from {{ model }} where {{ column_name }} < 0 or {{ column_name }} > 1
{% endtest %}

{#- Both bounds inclusive. -#}
{% test between(model, column_name, min_value, max_value) %}
    select {{ column_name }} from {{ model }}
    where {{ column_name }} < {{ min_value }} or {{ column_name }} > {{ max_value }}
{% endtest %}
