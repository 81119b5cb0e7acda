-- Oversell alerts per channel and reason: an alert counts for every channel selling from its sku x warehouse
-- (`none` when no channel has activity there).
with alerts as (
    select * from {{ ref('stg_gold__oversell_alerts') }}
),

per_channel as (
    select
        coalesce(channel, 'none') as channel,
        reason,
        sku,
        warehouse_id,
        available_to_sell,
        coalesce(size(orders_exceeding), 0) as orders_exceeding
    from alerts
    lateral view outer explode(channels) exploded as channel
)

select
    concat_ws('|', channel, reason) as incident_key,
    channel,
    reason,
    cast(count(*) as bigint) as alerts,
    cast(count(distinct sku) as bigint) as skus,
    cast(count(distinct warehouse_id) as bigint) as warehouses,
    cast(sum(orders_exceeding) as bigint) as orders_exceeding,
    cast(min(available_to_sell) as bigint) as lowest_available_to_sell
from per_channel
group by channel, reason
