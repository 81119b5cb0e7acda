select
    event_id,
    event_type,
    event_time,
    order_id,
    sku,
    warehouse_id,
    cast(quantity as int) as quantity,
    ingested_at
from {{ source('silver', 'inventory_events') }}
