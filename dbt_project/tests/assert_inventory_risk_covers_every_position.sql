-- fct_inventory_risk has one row per sku x warehouse of gold.inventory_positions, with its available_to_sell.
select positions.sku, positions.warehouse_id
from (
    select sku, warehouse_id, max(available_to_sell) as available_to_sell
    from {{ ref('stg_gold__inventory_positions') }}
    group by sku, warehouse_id
) as positions
full outer join {{ ref('fct_inventory_risk') }} as risk using (sku, warehouse_id)
where risk.position_key is null
    or positions.available_to_sell is null
    or risk.available_to_sell != positions.available_to_sell
