-- Sales per channel and currency (revenue is only additive within one currency; revenue_reporting is in the
-- reporting currency, converted at each order's event time).
select
    concat_ws('|', channel, currency) as sales_key,
    channel,
    currency,
    cast(sum(orders) as bigint) as total_orders,
    cast(sum(units) as bigint) as total_units,
    cast(sum(revenue) as decimal(18, 2)) as total_revenue,
    cast(sum(revenue_reporting) as decimal(18, 2)) as total_revenue_reporting,
    max(reporting_currency) as reporting_currency,
    cast(count(distinct order_date) as bigint) as active_days,
    min(order_date) as first_order_date,
    max(order_date) as last_order_date
from {{ ref('stg_sales') }}
group by channel, currency
