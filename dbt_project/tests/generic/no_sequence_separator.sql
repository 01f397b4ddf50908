{#- A value that holds ';' would split into two elements of a ';'-joined sequence. -#}
{% test no_sequence_separator(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} like '%;%'
{% endtest %}
