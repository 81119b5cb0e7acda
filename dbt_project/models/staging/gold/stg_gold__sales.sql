select
    cast(order_date as date) as order_date,
    channel,
    region,
    currency,
    cast(orders as bigint) as orders,
    cast(units as bigint) as units,
    cast(revenue as decimal(18, 2)) as revenue,
    cast(revenue_reporting as decimal(18, 2)) as revenue_reporting,
    reporting_currency
from {{ source('gold', 'sales') }}
