-- One row per day x channel x currency, typed and cleaned.
select
    cast(order_date as date) as order_date,
    lower(trim(channel)) as channel,
    upper(trim(currency)) as currency,
    cast(orders as bigint) as orders,
    cast(units as bigint) as units,
    cast(revenue as decimal(18, 2)) as revenue
from {{ source('gold', 'sales_daily') }}
where order_date is not null
