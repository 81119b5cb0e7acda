select
    order_id,
    currency,
    cast(expected as decimal(18, 2)) as expected_amount,
    cast(authorized as decimal(18, 2)) as authorized_amount,
    cast(captured as decimal(18, 2)) as captured_amount,
    cast(refunded as decimal(18, 2)) as refunded_amount,
    cast(chargeback as decimal(18, 2)) as chargeback_amount,
    cast(settled as decimal(18, 2)) as settled_amount,
    mismatches,
    status
from {{ source('gold', 'payment_reconciliation') }}
