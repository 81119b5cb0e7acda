select
    event_id,
    event_type,
    event_time,
    payment_id,
    order_id,
    provider as processor,
    cast(amount as decimal(18, 2)) as amount,
    currency,
    ingested_at
from {{ source('silver', 'payments_events') }}
