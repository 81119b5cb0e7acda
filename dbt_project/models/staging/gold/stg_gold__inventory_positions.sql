select
    sku,
    warehouse_id,
    channel,
    cast(on_hand as bigint) as on_hand,
    cast(locked as bigint) as locked_units,
    cast(sold as bigint) as sold_units,
    cast(available_to_sell as bigint) as available_to_sell
from {{ source('gold', 'inventory_positions') }}
