{#
  Data tests scoped to what changed (var `changed_only`, dbt_project.yml, or, as
  `nextbuy` passes it, env NEXTBUY_CHANGED_ONLY=true: a var that differs between two
  invocations makes dbt re-parse the whole project, and the daily loop's dbt commands
  alternate between scoped and unscoped; read only while executing, the env var costs no
  parse).

  An incremental build rebuilds only the customers int_customer_changes logged since each
  model's watermark (incremental.sql); a daily run's tests need not read everyone else's
  rows again. With `--vars '{changed_only: true}'` (and without --full-refresh), a test
  that opts in, through the `where` config `__changed_rows__` (dbt_project.yml sets it on
  every test of staging/, intermediate/, marts/ and scoring/), reads only:

    the rows of the customers logged in int_customer_changes after the watermark through
    which this same test last passed (`_data_test_watermarks`, written at the end of every
    run for the tests that passed),

  plus every row whose customer_id is NULL (such a row belongs to no customer; a
  not_null test on customer_id must still see it). In a daily run after a good one, that
  is exactly the customers this run logged (their changed_at is this run's
  run_started_at). Counting from the test's last pass rather than from this run makes it
  exact in the other cases too: customers a failed run logged but did not rebuild, rows
  that failed a test and were left as they were (the test sees them again, and fails
  again, until they are fixed), a `dbt test` after a separate `dbt run`, and a run that
  selected only some models. A test that has never passed, and every test of a full build
  (no var, or --full-refresh), reads the whole table.

  How a model's rows are told apart is its own declaration, meta `test_scope`:
    changed_customers  rebuilt by customer (customer_incremental_config(): int_orders,
                       int_purchase_items, int_customer_history, training_examples);
    change_log         int_customer_changes itself: the rows logged since;
    built_rows         rebuilt by customer and by date, each row stamped with the
                       run_started_at of the build that wrote it (`built_at`):
                       int_score_outcomes, whose every row of a recomputed customer or
                       date is rewritten (macros/score_outcomes.sql). The rows built
                       after the test last passed;
    published_dates    ml.customer_scores as staged (stg_ml__customer_scores): every row
                       of the as-of dates published (scored_at) after the test last
                       passed, since publishing replaces a date whole;
    changed_partitions raw order_items as staged (stg_thelook__order_items): the rows of
                       the day partitions whose last_modified_time is after the test last
                       passed, since a load replaces a day partition whole. The changed
                       days are looked up first and written in as literals, with bounds
                       on created_at that the warehouse prunes on.
  For the last three, the watermark a passing test records is the run's run_started_at:
  every row written before it has been read.
  Tests of any other model keep the whole table even when they carry `__changed_rows__`:
  customer_features' as_of moves every day for every customer, so every one of its rows
  is written again in every run (see _marts__models.yml).

  Which rows a test must read depends on the rule, and is decided per test type below:
    - a rule about one row (not_null, accepted_values, relationships' child rows, ranges,
      rules between columns, sequences): the changed rows;
    - uniqueness of the scoping key itself, or of a combination that holds it
      (unique_combination of customer_id, ...): the changed rows, since a duplicate of a
      changed row has the same customer;
    - uniqueness of another key (unique order_id): every row that shares a key value with
      a changed row, so that a changed row duplicating an unchanged customer's key (an
      order whose items moved to another customer) still fails;
    - any other test type on a scoped model is refused at compile time, naming the test,
      until someone decides here how it is scoped.
  Singular tests do not take the `where` config; the leakage test calls
  where_changed_rows() on its imports (its rows join only rows of the same customer).

  Assumed, as incremental builds assume it: a customer's rows change only when
  int_customer_changes logs them (users and orders rows change with their items' day; the
  code, the vars and the catalogue's history are as in the last full build). After a
  change to the project or to the campaign's vars, run a full build: its tests read
  everything.
#}

{% macro changed_only() -%}
    {%- set truthy = [true, 'true', 'True', '1'] -%}
    {%- set asked = var('changed_only', false) in truthy
        or env_var('NEXTBUY_CHANGED_ONLY', 'false') in truthy -%}
    {{ return(asked and not flags.FULL_REFRESH) }}
{%- endmacro %}

{% macro data_test_watermarks_relation() -%}
    {{ return(api.Relation.create(
        database=target.database, schema='intermediate', identifier='_data_test_watermarks')) }}
{%- endmacro %}

{# A model of this project by name, as a relation (without a ref: a test's dependencies
   must not change with a var). #}
{% macro model_relation(name) -%}
    {%- set node = graph.nodes['model.' ~ project_name ~ '.' ~ name] -%}
    {{ return(api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias)) }}
{%- endmacro %}

{# The meta test_scope of a model node (see above), or none. #}
{% macro test_scope(node) -%}
    {{ return((node.config.meta or {}).get('test_scope')) }}
{%- endmacro %}

{# The watermark through which the running test last passed, or none (looked up). #}
{% macro tested_through() -%}
    {%- set lookup -%}
        select max(tested_through) from {{ data_test_watermarks_relation() }}
        where test_id = {{ string_literal(model.unique_id) }}
    {%- endset -%}
    {{ return(lookup_values(lookup)[0] if execute else none) }}
{%- endmacro %}

{#
  The condition that keeps the rows of a model (given by name and test_scope) that this
  test must read, `key` naming the column the test compares rows by (the scoping column
  when it compares none); none when the test reads the whole table.
#}
{% macro changed_rows_condition(model_name, scope, key=none) -%}
    {%- if not (execute and changed_only() and scope) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set since = tested_through() -%}
    {%- if since is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if scope == 'change_log' -%}
        {%- set condition = '(changed_at is null or changed_at > ' ~ timestamp_literal(since) ~ ')' -%}
    {%- elif scope == 'changed_partitions' -%}
        {%- set condition = changed_partitions_condition(since) -%}
    {%- elif scope in ['built_rows', 'published_dates'] -%}
        {%- if key is not none -%}
            {{ exceptions.raise_compiler_error("model " ~ model_name ~ ": test_scope " ~ scope ~ " scopes no test by another key (" ~ key ~ ")") }}
        {%- endif -%}
        {%- if scope == 'built_rows' -%}
            {%- set condition = '(built_at > ' ~ timestamp_literal(since) ~ ')' -%}
        {%- else -%}
            {%- set condition -%}
                (as_of in (
                    select as_of from {{ model_relation(model_name) }}
                    where scored_at > {{ timestamp_literal(since) }}
                ))
            {%- endset -%}
        {%- endif -%}
    {%- elif scope == 'changed_customers' -%}
        {%- set condition -%}
            (customer_id is null or customer_id in (
                select customer_id from {{ model_relation('int_customer_changes') }}
                where changed_at > {{ timestamp_literal(since) }}
            ))
        {%- endset -%}
    {%- else -%}
        {{ exceptions.raise_compiler_error("model " ~ model_name ~ ": unknown meta test_scope '" ~ scope ~ "'") }}
    {%- endif -%}
    {#- A test comparing rows by another key than the scope's own reads every row that
        shares a value of it with a scoped row. -#}
    {%- set own_key = {'changed_customers': 'customer_id', 'changed_partitions': 'partition_id'}.get(scope) -%}
    {%- if own_key and key is not none and key != own_key -%}
        {%- set condition -%}
            {{ key }} in (select {{ key }} from {{ model_relation(model_name) }} where {{ condition }})
        {%- endset -%}
    {%- endif -%}
    {{ return(condition) }}
{%- endmacro %}

{# The rows of the raw order_items day partitions changed after `since` (a Python
   datetime): a condition on partition_id and created_at, the days as literals (looked up
   first); false when no day changed. #}
{% macro changed_partitions_condition(since) -%}
    {%- set ids = partition_ids_modified_after(
        model_relation('stg_thelook__partitions'), timestamp_literal(since)) -%}
    {%- if not ids -%}
        {{ return('false') }}
    {%- endif -%}
    {{ return('(' ~ partitions_created_at_bounds('created_at', ids) ~ ' and partition_id in (' ~ string_literals(ids) ~ '))') }}
{%- endmacro %}

{# The column a generic test compares rows by, or none for a rule about single rows; a
   compile error for a test type not classified here (see the top of this file). #}
{% macro scoped_test_key(test, scope) -%}
    {%- set row_rules = [
        'not_null', 'accepted_values', 'relationships', 'between', 'positive', 'non_negative',
        'share', 'at_least', 'capped_sequence', 'aligned_sequences', 'no_sequence_separator',
    ] -%}
    {#- The columns that tell a scope's rows apart: a duplicate of a row read agrees with it
        on all of them, so it is read too. -#}
    {%- set scope_columns = {
        'change_log': ['changed_at'],
        'changed_customers': ['customer_id'],
        'built_rows': ['customer_id', 'as_of'],
        'published_dates': ['as_of'],
        'changed_partitions': ['partition_id'],
    }.get(scope, ['customer_id']) -%}
    {%- set combined = namespace(all=true) -%}
    {%- for column in scope_columns if column not in (test.kwargs.columns or []) -%}
        {%- set combined.all = false -%}
    {%- endfor -%}
    {%- if test.name in row_rules -%}
        {{ return(none) }}
    {%- elif test.name == 'unique' -%}
        {{ return(none if [test.kwargs.column_name] == scope_columns else test.kwargs.column_name) }}
    {%- elif test.name == 'unique_combination' and combined.all -%}
        {{ return(none) }}
    {%- endif -%}
    {{ exceptions.raise_compiler_error(
        "test " ~ model.unique_id ~ " (" ~ test.name ~ ") carries the where config __changed_rows__ "
        ~ "on a model whose tests are scoped, but macros/scoped_tests.sql does not say which rows "
        ~ "it must read: classify it there, or give the test another where config") }}
{%- endmacro %}

{#
  dbt's own macro (the `where` config), overridden as dbt's documentation suggests for a
  `where` that needs a macro: `__changed_rows__` is replaced by changed_rows_condition()
  for the tested model, or dropped when the test reads the whole table; any other `where`
  works as in dbt.
#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if not (where and '__changed_rows__' in where) -%}
        {{ return(dbt.default__get_where_subquery(relation)) }}
    {%- endif -%}
    {%- set condition = none -%}
    {%- if execute and changed_only() -%}
        {%- set tested = graph.nodes[model.attached_node] -%}
        {%- set scope = test_scope(tested) -%}
        {%- if scope -%}
            {%- set key = scoped_test_key(model.test_metadata, scope) -%}
            {%- set condition = changed_rows_condition(tested.name, scope, key) -%}
        {%- endif -%}
    {%- endif -%}
    {%- set where = where | replace('__changed_rows__', condition or 'true') -%}
    {%- if where | trim == 'true' -%}
        {{ return(relation) }}
    {%- endif -%}
    {{ return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') }}
{%- endmacro %}

{# For a singular test's import CTE of a model: `where <condition>` when the test reads
   only the changed rows (see above), nothing otherwise. #}
{% macro where_changed_rows(model_name) -%}
    {%- if execute and changed_only() -%}
        {%- set condition = changed_rows_condition(
            model_name, test_scope(graph.nodes['model.' ~ project_name ~ '.' ~ model_name])) -%}
        {%- if condition %}
    where {{ condition }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#
  The on-run-end hook: every data test that passed (or only warned) in this run, on a
  model with a test_scope, has now read everything of its models through their
  watermarks (for the change log: its newest change). Recorded per test, as the test's
  next start (`tested_through`); a test that failed, errored or was skipped keeps its
  last one, so that its next run reads those rows again.
#}
{% macro record_tested_watermarks(results) -%}
    {%- set passed = [] -%}
    {%- for result in results
        if result.node.resource_type == 'test' and result.status in ['pass', 'warn'] -%}
        {%- set scoped = [] -%}
        {%- for upstream in result.node.depends_on.nodes
            if upstream in graph.nodes and test_scope(graph.nodes[upstream]) -%}
            {%- do scoped.append(graph.nodes[upstream]) -%}
        {%- endfor -%}
        {%- if scoped -%}
            {%- do passed.append((result.node.unique_id, scoped)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not (execute and passed) -%}
        {{ return('') }}
    {%- endif -%}
    {%- set changes = model_relation('int_customer_changes') -%}
    {%- if adapter.get_relation(changes.database, changes.schema, changes.identifier) is none -%}
        {{ return('') }}
    {%- endif -%}
    {%- set marks = {} -%}
    {%- set lookup -%}
        select model_name, max(processed_through) from {{ watermarks_relation() }} group by model_name
    {%- endset -%}
    {%- for row in run_query(lookup) -%}
        {%- do marks.update({row[0]: row[1]}) -%}
    {%- endfor -%}
    {%- set newest_change -%}
        select max(changed_at) from {{ changes }}
    {%- endset -%}
    {%- set newest_change = lookup_values(newest_change)[0] -%}
    {%- set rows = [] -%}
    {%- for test_id, scoped in passed -%}
        {#- Through the oldest watermark of the scoped models the test reads. -#}
        {%- set through = namespace(value=none, complete=true) -%}
        {%- for node in scoped -%}
            {%- if test_scope(node) == 'change_log' -%}
                {%- set mark = newest_change -%}
            {%- elif test_scope(node) in ['built_rows', 'published_dates', 'changed_partitions'] -%}
                {%- set mark = run_started_at.replace(tzinfo=none) -%}
            {%- else -%}
                {%- set mark = marks.get(node.alias) -%}
            {%- endif -%}
            {%- if mark is none -%}
                {%- set through.complete = false -%}
            {%- elif through.value is none or mark < through.value -%}
                {%- set through.value = mark -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if through.complete -%}
            {%- do rows.append('(' ~ string_literal(test_id) ~ ', ' ~ timestamp_literal(through.value) ~ ')') -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if rows %}
    insert into {{ data_test_watermarks_relation() }} (test_id, tested_through)
    values {{ rows | join(', ') }}
    {%- endif -%}
{%- endmacro %}
