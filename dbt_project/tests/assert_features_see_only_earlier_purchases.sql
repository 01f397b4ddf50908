{#
  Leakage test. For every training example of purchase k, recount from the purchased
  items which of them the features may see: items of purchases strictly before k in the
  customer's (order time, order_id) order. Returns the examples whose prior_orders,
  prior_items or last sequence element disagree, i.e. whose features saw purchase k
  itself or anything after it. Independent of int_customer_history, which built them.

  With var changed_only (macros/scoped_tests.sql) it reads only the changed customers'
  examples and items: every join here is within one customer, so that finds every leak
  in a changed customer's examples, and no other customer's examples changed.
#}

-- Dagster shows it as a check of training_examples (it reads int_purchase_items too).
{{ config(meta={'dagster': {'ref': {'name': 'training_examples'}}}) }}

with

examples as (

    select * from {{ ref('training_examples') }}
    {{- where_changed_rows('training_examples') }}

),

purchase_items as (

    select * from {{ ref('int_purchase_items') }}
    {{- where_changed_rows('int_purchase_items') }}

),

visible as (

    select
        examples.customer_id,
        examples.order_id,
        count(purchase_items.order_item_id) as visible_items,
        count(distinct purchase_items.order_id) as visible_orders,
        max(purchase_items.item_number) as last_visible_item

    from examples
    left join purchase_items
        on
            examples.customer_id = purchase_items.customer_id
            and (
                examples.as_of > purchase_items.ordered_at
                or (
                    examples.as_of = purchase_items.ordered_at
                    and examples.order_id > purchase_items.order_id
                )
            )
    group by examples.customer_id, examples.order_id

),

final as (

    select
        examples.customer_id,
        examples.order_id,
        examples.prior_orders,
        visible.visible_orders,
        examples.prior_items,
        visible.visible_items,
        examples.brand_sequence,
        last_item.brand as last_visible_brand

    from examples
    inner join visible
        on
            examples.customer_id = visible.customer_id
            and examples.order_id = visible.order_id
    left join purchase_items as last_item
        on
            visible.customer_id = last_item.customer_id
            and visible.last_visible_item = last_item.item_number
    where
        examples.prior_orders != visible.visible_orders
        or examples.prior_items != visible.visible_items
        or {{ last_sequence_element('examples.brand_sequence') }} != last_item.brand

)

select * from final
