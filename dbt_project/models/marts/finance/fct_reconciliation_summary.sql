-- Payment reconciliation per processor x category x currency (`ok` for an order that reconciles). An order with
-- two mismatches counts in both categories: totals add up within a category, not across categories.
with reconciliation as (
    select * from {{ ref('stg_gold__payment_reconciliation') }}
),

processors as (
    select order_id, min_by(processor, event_time) as processor
    from {{ ref('stg_silver__payments_events') }}
    group by order_id
),

categorized as (
    select
        coalesce(processors.processor, 'none') as processor,
        coalesce(category, 'ok') as category,
        reconciliation.*
    from reconciliation
    left join processors using (order_id)
    lateral view outer explode(reconciliation.mismatches) exploded as category
)

select
    concat_ws('|', processor, category, currency) as summary_key,
    processor,
    category,
    currency,
    cast(count(*) as bigint) as orders,
    cast(sum(expected_amount) as decimal(18, 2)) as expected_amount,
    cast(sum(captured_amount) as decimal(18, 2)) as captured_amount,
    cast(sum(refunded_amount) as decimal(18, 2)) as refunded_amount,
    cast(sum(chargeback_amount) as decimal(18, 2)) as chargeback_amount,
    cast(sum(coalesce(settled_amount, 0)) as decimal(18, 2)) as settled_amount,
    cast(sum(captured_amount - coalesce(settled_amount, 0)) as decimal(18, 2)) as captured_not_settled
from categorized
group by processor, category, currency
