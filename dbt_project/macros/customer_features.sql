{#
  customer_features, built incrementally (models/marts/customer_features.sql).

  Every customer's as_of moves every day, and with it three columns (days_since_*); the
  rest of a customer's row changes only when their history does. So a daily build:
    1. pre-hook: deletes the rows of the customers it recomputes (below);
    2. pre-hook: moves every other row to the new as_of: as_of and the days_since
       columns, computed from the instants the row keeps (last_order_at,
       first_order_at, signed_up_at) by the same expressions a full build uses
       (days_since_features() in purchase_features.sql), so a moved row is bit for bit
       the row a full build would write;
    3. select: recomputes those customers from their history (appended);
    4. post-hook: moves its watermark (incremental.sql) to the newest logged change.
  The customers recomputed are:
    - those int_customer_changes logged after the model's watermark (new, re-delivered
      or corrected days, a changed product), as for every customer-incremental model;
    - those with a purchase between the as_of the table holds and the new one: their
      last purchase before as_of is another one now (thelook's items can be dated days
      ahead of the partition that delivers them, so such a purchase can sit in raw
      before as_of reaches it; and an earlier as_of, asked for explicitly, takes
      purchases away).
  A customer with no purchase before as_of has no row; one whose first purchase is
  reached by the new as_of gets one. The table's as_of is looked up once, when the model
  is compiled (before the hooks run), and written into the SQL as a literal, as the
  watermarks are; an empty table (or none) means everyone is recomputed.
#}

{# The as_of the table holds now: a Python datetime, or none when it holds no row. #}
{% macro held_as_of() -%}
    {%- if not (execute and is_incremental()) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set lookup -%}
        select max(as_of) from {{ this }}
    {%- endset -%}
    {{ return(lookup_values(lookup)[0]) }}
{%- endmacro %}

{# Which customers an incremental build recomputes: a condition on customer_id. #}
{% macro customer_features_recompute() -%}
    {%- set held = held_as_of() -%}
    {%- if held is none -%}
        true
    {%- else -%}
        (
            customer_id in ({{ changed_customers() }})
            or customer_id in (
                select customer_id
                from {{ ref('int_customer_history') }}
                where
                    last_order_at >= least({{ timestamp_literal(held) }}, {{ as_of_timestamp() }})
                    and last_order_at < greatest({{ timestamp_literal(held) }}, {{ as_of_timestamp() }})
            )
        )
    {%- endif -%}
{%- endmacro %}

{# Moves the rows kept to the new as_of (a pre-hook, after the recomputed rows are deleted). #}
{% macro customer_features_move_as_of() -%}
    update {{ this }} set
        as_of = {{ as_of_timestamp() }}
        {%- for name, expression in days_since_features(
            'last_order_at', 'first_order_at', 'signed_up_at', as_of_timestamp()).items() %},
        {{ name }} = {{ expression }}
        {%- endfor %}
    where as_of != {{ as_of_timestamp() }}
{%- endmacro %}
