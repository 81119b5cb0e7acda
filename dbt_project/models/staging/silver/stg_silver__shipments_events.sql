select
    event_id,
    event_type,
    event_time,
    shipment_id,
    order_id,
    carrier,
    return_reason,
    ingested_at
from {{ source('silver', 'shipments_events') }}
