-- Units reserved per sku x warehouse x channel over the trailing `demand_window_days` (ending at the newest
-- inventory event).
{{ config(materialized='table') }}

with reservations as (
    select events.*, orders.channel
    from {{ ref('stg_silver__inventory_events') }} as events
    left join {{ ref('int_orders') }} as orders using (order_id)
    where events.event_type = 'inventory_locked'
),

bounds as (
    select
        cast(max(event_time) as date) as as_of_date,
        cast(min(event_time) as date) as first_date
    from reservations
),

in_window as (
    select reservations.*, bounds.as_of_date, bounds.first_date
    from reservations cross join bounds
    where cast(reservations.event_time as date)
        > date_sub(bounds.as_of_date, {{ var('demand_window_days') }})
),

per_key as (
    select
        sku,
        warehouse_id,
        coalesce(channel, 'unknown') as channel,
        max(as_of_date) as as_of_date,
        least({{ var('demand_window_days') }}, datediff(max(as_of_date), max(first_date)) + 1) as observed_days,
        cast(sum(quantity) as bigint) as reserved_units
    from in_window
    group by sku, warehouse_id, coalesce(channel, 'unknown')
)

select * from per_key
