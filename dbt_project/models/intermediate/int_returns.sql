-- One row per returned order: the first `returned` shipment event of the order.
select
    order_id,
    min(event_time) as returned_at,
    min_by(return_reason, event_time) as return_reason
from {{ ref('stg_silver__shipments_events') }}
where event_type = 'returned' and order_id is not null
group by order_id
