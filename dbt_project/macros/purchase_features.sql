{#
  The one definition of a customer's features at a point in time, used by both
  training_examples (as of each order k >= 2) and customer_features (as of the run's date),
  so that what a model learns from and what it scores cannot diverge.

  `anchors` is a relation with customer_id, as_of, and history_order_number: the number of
  the customer's last purchase that the features may see (k - 1 for an example of order k;
  the last purchase before as_of when scoring). Every history column comes from
  int_customer_history at exactly that order, so nothing at or after the anchor leaks in.
  `history` and `users` name the calling model's import CTEs of int_customer_history and
  stg_thelook__users (an incremental build narrows them to the changed customers).
  `before_as_of` and `after_as_of` are the anchor's own columns to carry around as_of
  (order_id before, label after, as the column contract orders them). With `instants`,
  the columns end with the three instants the days_since columns count from
  (last_order_at, first_order_at, signed_up_at): customer_features keeps them, so that a
  daily build moves every customer to the new as_of by days_since_features() alone.
#}

{% macro purchase_features(anchors, history='history', users='users', before_as_of=[], after_as_of=[], instants=false) -%}

    select
        {{ anchors }}.customer_id,
        {%- for column in before_as_of %}
        {{ anchors }}.{{ column }},
        {%- endfor %}
        {{ anchors }}.as_of,
        {%- for column in after_as_of %}
        {{ anchors }}.{{ column }},
        {%- endfor %}

        -- categorical
        users.gender,
        users.country,
        users.city,
        users.traffic_source,

        -- numeric
        users.age,
        history.order_number as prior_orders,
        history.items_through as prior_items,
        {%- for name, expression in days_since_features(
            'history.last_order_at', 'history.first_order_at', 'users.signed_up_at',
            anchors ~ '.as_of').items() %}
        {{ expression }} as {{ name }},
        {%- endfor %}
        history.avg_item_price_through as avg_item_price,
        history.last_item_price,
        history.target_items_through * 1.0 / history.items_through as prior_target_brand_share,
        cast(history.target_items_through as {{ dbt.type_bigint() }}) as prior_target_items,
        cast(history.target_brands_through as {{ dbt.type_bigint() }}) as prior_target_brands,

        -- text: the last {{ required_var('sequence_length') }} purchased items, oldest first
        history.brand_sequence,
        history.department_sequence,
        history.category_sequence
        {%- if instants %},

        -- the instants the days_since columns count from
        history.last_order_at,
        history.first_order_at,
        users.signed_up_at
        {%- endif %}

    from {{ anchors }}
    inner join {{ history }} as history
        on
            {{ anchors }}.customer_id = history.customer_id
            and {{ anchors }}.history_order_number = history.order_number
    left join {{ users }} as users
        on {{ anchors }}.customer_id = users.customer_id

{%- endmacro %}

{#
  The features that count days from an instant to as_of, by name: the one definition of
  them, used by purchase_features and by customer_features' daily move to a new as_of
  (macros/customer_features.sql), so a moved row equals a recomputed one to the bit.
#}
{% macro days_since_features(last_order_at, first_order_at, signed_up_at, as_of) -%}
    {{ return({
        'days_since_last_order': days_between(last_order_at, as_of),
        'days_since_first_order': days_between(first_order_at, as_of),
        'days_since_signup': days_between(signed_up_at, as_of),
    }) }}
{%- endmacro %}
