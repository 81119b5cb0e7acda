-- One row per day x channel x region x currency, typed and cleaned.
select
    cast(order_date as date) as order_date,
    lower(trim(channel)) as channel,
    upper(trim(region)) as region,
    upper(trim(currency)) as currency,
    cast(orders as bigint) as orders,
    cast(units as bigint) as units,
    cast(revenue as decimal(18, 2)) as revenue,
    cast(revenue_reporting as decimal(18, 2)) as revenue_reporting,
    upper(trim(reporting_currency)) as reporting_currency
from {{ source('gold', 'sales') }}
where order_date is not null
