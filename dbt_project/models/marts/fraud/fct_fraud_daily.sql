-- Daily fraud risk per channel: scored orders, orders with any rule flag (fraud_score > 0), high-risk orders
-- (fraud_score >= 2), each rule's hits, and the flagged amount in the reporting currency.
with signals as (
    select * from {{ ref('stg_gold__fraud_signals') }}
),

amounts as (
    select order_id, total_amount_reporting from {{ ref('int_orders') }}
),

scored as (
    select signals.*, amounts.total_amount_reporting
    from signals left join amounts using (order_id)
)

select
    concat_ws('|', cast(order_date as string), channel) as risk_key,
    order_date,
    channel,
    cast(count(*) as bigint) as orders,
    cast(count_if(fraud_score > 0) as bigint) as flagged_orders,
    cast(count_if(fraud_score >= 2) as bigint) as high_risk_orders,
    cast(count_if(velocity_flag) as bigint) as velocity_flags,
    cast(count_if(amount_outlier) as bigint) as amount_outliers,
    cast(count_if(currency_mismatch) as bigint) as currency_mismatches,
    cast(count_if(chargeback_history) as bigint) as chargeback_histories,
    cast(count_if(fraud_score > 0) / count(*) as decimal(9, 4)) as flagged_rate,
    cast(avg(fraud_score) as decimal(9, 4)) as avg_fraud_score,
    cast(max(anomaly_score) as double) as max_anomaly_score,
    cast(coalesce(sum(case when fraud_score > 0 then total_amount_reporting end), 0) as decimal(18, 2))
        as flagged_amount,
    '{{ var("reporting_currency") }}' as reporting_currency
from scored
group by order_date, channel
