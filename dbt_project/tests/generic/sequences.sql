{#-
  The ';'-joined sequences of a row (brand, department, category) list the customer's
  last purchased items, oldest first, capped at var('sequence_length'). A ';' leaking
  into a name, a truncation or a join that fans out breaks one of these rules.
-#}

{#- Between 1 and var('sequence_length') items: never empty, never past the cap. -#}
{% test capped_sequence(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where {{ sequence_items(column_name) }} not between 1 and {{ required_var('sequence_length') }}
{% endtest %}

{#- The sequences describe the same items: as many in each, and no more than
    `items_column` (the items bought before as_of). -#}
{% test aligned_sequences(model, columns, items_column) %}
    {%- set first = sequence_items(columns[0]) %}
    select {{ columns | join(', ') }}, {{ items_column }}
    from {{ model }}
    where
        {%- for column in columns[1:] %}
        {{ sequence_items(column) }} != {{ first }} or
        {%- endfor %}
        {{ first }} > {{ items_column }}
{% endtest %}
