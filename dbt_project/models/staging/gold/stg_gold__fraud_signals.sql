select
    order_id,
    customer_id,
    event_time as placed_at,
    cast(event_time as date) as order_date,
    channel,
    currency,
    cast(total_amount as decimal(18, 2)) as total_amount,
    velocity_flag,
    amount_outlier,
    currency_mismatch,
    chargeback_history,
    cast(fraud_score as int) as fraud_score,
    cast(anomaly_score as double) as anomaly_score
from {{ source('gold', 'fraud_signals') }}
