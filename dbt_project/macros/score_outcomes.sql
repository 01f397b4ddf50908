{#
  Which rows of int_score_outcomes an incremental build recomputes: a row's outcome (its
  customer's next purchase from the as-of date on) changes only when

    - the customer's purchases change: int_customer_changes logs them (incremental.sql;
      this model keeps its own watermark there, as the customer-incremental models do);
    - the date's batch scores are published, or published again (a rescoring after a
      promotion): the dates of ml.customer_scores published after the newest scored_at
      this table holds;
    - the customer is served online again: the customers of ml.online_predictions
      requested after the newest online request this table holds (their latest request of
      a date is the one judged).

  The pre-hook deletes the rows of those customers and dates, and the select recomputes
  the same customers and dates from scratch; a re-run with nothing new does nothing. When
  int_customer_changes itself was rebuilt since this model's watermark (a full refresh of
  the features, which a removed partition forces: its customers are logged nowhere), or
  the model has no watermark yet, everything is recomputed.

  The lookups run when the select is compiled and again when the pre-hook runs, both
  before the delete, so the two agree. Returns a SQL condition on customer_id and as_of.
#}
{% macro score_outcomes_recompute() -%}
    {%- if not (execute and is_incremental()) -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set mark -%}
        select max(processed_through) from {{ watermarks_relation() }}
        where model_name = '{{ this.identifier }}'
    {%- endset -%}
    {%- set log_start -%}
        select min(changed_at) from {{ ref('int_customer_changes') }}
    {%- endset -%}
    {%- set mark = lookup_values(mark)[0] -%}
    {%- set log_start = lookup_values(log_start)[0] -%}
    {%- if mark is none or (log_start is not none and log_start > mark) -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set through -%}
        select max(scored_at), max(requested_at) from {{ this }}
    {%- endset -%}
    {%- set through = run_query(through).rows[0] -%}
    {%- set dates -%}
        select distinct cast(as_of as {{ dbt.type_string() }})
        from {{ ref('stg_ml__customer_scores') }}
        {%- if through[0] is not none %}
        where scored_at > {{ timestamp_literal(through[0]) }}
        {%- endif %}
    {%- endset -%}
    {%- set conditions = ['customer_id in (' ~ changed_customers() ~ ')'] -%}
    {%- set dates = lookup_values(dates) | sort -%}
    {%- if dates -%}
        {%- set literals = [] -%}
        {%- for day in dates -%}
            {%- do literals.append('cast(' ~ string_literal(day) ~ ' as date)') -%}
        {%- endfor -%}
        {%- do conditions.append('as_of in (' ~ literals | join(', ') ~ ')') -%}
    {%- endif -%}
    {%- set online -%}
        select customer_id from {{ ref('stg_ml__online_predictions') }}
        {%- if through[1] is not none %}
        where requested_at > {{ timestamp_literal(through[1]) }}
        {%- endif %}
    {%- endset -%}
    {%- do conditions.append('customer_id in (' ~ online ~ ')') -%}
    {{ return('(' ~ conditions | join(' or ') ~ ')') }}
{%- endmacro %}
