select
    event_id,
    event_type,
    event_time,
    order_id,
    customer_id,
    channel,
    region,
    currency,
    lines,
    cast(total_amount as decimal(18, 2)) as total_amount,
    cast(units as int) as units,
    cast(fx_rate as decimal(18, 8)) as fx_rate,
    cast(total_amount_eur as decimal(18, 2)) as total_amount_reporting,
    ingested_at
from {{ source('silver', 'orders_events') }}
