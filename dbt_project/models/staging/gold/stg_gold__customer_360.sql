select
    customer_id,
    cast(orders as bigint) as orders,
    cast(cancelled_orders as bigint) as cancelled_orders,
    cast(revenue as decimal(18, 2)) as revenue,
    cast(refunds as decimal(18, 2)) as refunds,
    cast(lifetime_value as decimal(18, 2)) as lifetime_value,
    reporting_currency,
    channels_used,
    first_order_at,
    last_order_at,
    last_activity_at
from {{ source('gold', 'customer_360') }}
