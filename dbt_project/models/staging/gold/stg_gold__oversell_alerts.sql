select
    sku,
    warehouse_id,
    cast(available_to_sell as bigint) as available_to_sell,
    channels,
    orders_exceeding,
    reason
from {{ source('gold', 'oversell_alerts') }}
