-- One row per sku x warehouse: stock, average daily demand (units reserved over the trailing window), days of
-- cover, the champion's demand forecast for the next 7 days (every channel of the sku x warehouse; the summed
-- 90th percentiles as a cautious bound), and a stock-out risk:
--   out_of_stock  nothing available to sell
--   high          the next 7 days' forecast reaches what is available
--   medium        14 days of average demand reach what is available
--   low           otherwise (also: no demand seen in the window)
with positions as (
    select
        sku,
        warehouse_id,
        max(on_hand) as on_hand,
        sum(locked_units) as locked_units,
        sum(sold_units) as sold_units,
        max(available_to_sell) as available_to_sell
    from {{ ref('stg_gold__inventory_positions') }}
    group by sku, warehouse_id
),

demand as (
    select * from {{ ref('int_sku_warehouse_demand') }}
),

forecast_7d as (
    select
        sku,
        warehouse_id,
        sum(forecast_units) as forecast_units_7d,
        sum(forecast_p90) as forecast_p90_7d
    from {{ ref('stg_gold__demand_forecast') }}
    where horizon <= 7
    group by sku, warehouse_id
),

per_key_demand as (
    select
        sku,
        warehouse_id,
        sum(reserved_units) as reserved_units,
        max(observed_days) as observed_days
    from demand
    group by sku, warehouse_id
),

measured as (
    select
        positions.*,
        coalesce(per_key_demand.reserved_units, 0) as reserved_units_window,
        coalesce(per_key_demand.reserved_units / per_key_demand.observed_days, 0) as avg_daily_demand,
        coalesce(forecast_7d.forecast_units_7d, 0) as forecast_units_7d,
        coalesce(forecast_7d.forecast_p90_7d, 0) as forecast_p90_7d
    from positions
    left join per_key_demand using (sku, warehouse_id)
    left join forecast_7d using (sku, warehouse_id)
)

select
    concat_ws('|', sku, warehouse_id) as position_key,
    sku,
    warehouse_id,
    cast(on_hand as bigint) as on_hand,
    cast(locked_units as bigint) as locked_units,
    cast(sold_units as bigint) as sold_units,
    cast(available_to_sell as bigint) as available_to_sell,
    cast(reserved_units_window as bigint) as reserved_units_window,
    cast(avg_daily_demand as decimal(18, 4)) as avg_daily_demand,
    case when avg_daily_demand > 0 then cast(greatest(available_to_sell, 0) / avg_daily_demand as decimal(18, 2))
        end as days_of_cover,
    cast(forecast_units_7d as decimal(18, 2)) as forecast_units_7d,
    cast(forecast_p90_7d as decimal(18, 2)) as forecast_p90_7d,
    {{ stock_out_risk('available_to_sell', 'forecast_units_7d', 'avg_daily_demand') }} as stock_out_risk
from measured
