-- fct_sales_daily per ISO week (weeks start on Monday). Every measure adds up over days: an order is placed on
-- one day and returned at most once.
select
    concat_ws('|', cast(week_start as string), channel, region, category) as sales_key,
    week_start,
    channel,
    region,
    category,
    cast(sum(orders) as bigint) as orders,
    cast(sum(units) as bigint) as units,
    cast(sum(gross_revenue) as decimal(18, 2)) as gross_revenue,
    cast(sum(returned_orders) as bigint) as returned_orders,
    cast(sum(returned_units) as bigint) as returned_units,
    cast(sum(returned_revenue) as decimal(18, 2)) as returned_revenue,
    cast(sum(net_revenue) as decimal(18, 2)) as net_revenue,
    max(reporting_currency) as reporting_currency
from (
    select *, cast(date_trunc('week', sales_date) as date) as week_start
    from {{ ref('fct_sales_daily') }}
)
group by week_start, channel, region, category
