{#
  Future-dated order items: created more than this many days after raw received them
  (their day partition's last_modified_time). Such a row cannot be true yet: an item
  dated 2999, a clock or time-zone slip in the source. It is quarantined
  (stg_thelook__future_order_items) and left out of every feature and label, until its
  day partition is corrected or dropped (`nextbuy partitions drop YYYYMMDD`).

  Why seven days: the simulator and Google's thelook generator write items up to four
  days after the day they export (the shop's pending deliveries), and those are real;
  seven leaves room for them and a late clock, and is far below a misdated year. An item
  within the tolerance but after a run's as-of date is kept, and simply not used yet:
  customer_features sees only orders before the as-of instant, and the training split
  ends at the as-of date (ml/split.py).

  Measured against when raw received the row, not against a run's as-of date: that
  reference changes only when the row's partition is written again, which is also when
  an incremental build recomputes its customer; against a moving as-of date a row
  would be admitted later without any partition changing, and never reach the marts.
#}
{% macro future_dated_tolerance_days() -%}
    7
{%- endmacro %}
