select
    processor,
    settlement_id,
    payment_id,
    order_id,
    cast(amount as decimal(18, 2)) as amount,
    currency,
    cast(fee as decimal(18, 2)) as fee,
    settled_at
from {{ source('silver', 'settlements') }}
