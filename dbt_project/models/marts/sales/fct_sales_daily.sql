-- Sales per day x channel x region x category in the reporting currency: placed orders (as gold.sales counts
-- them: on the day placed, at the rate of the order's event time) and returns (on the day of the return, valued
-- at the returned order's lines). `orders` counts distinct orders with a line in the category: it adds up over
-- days, not over categories.
with lines as (
    select * from {{ ref('int_order_lines') }}
),

returns as (
    select * from {{ ref('int_returns') }}
),

sold as (
    select
        order_date as sales_date,
        channel,
        region,
        category,
        count(distinct order_id) as orders,
        sum(quantity) as units,
        sum(line_amount_reporting) as gross_revenue
    from lines
    group by order_date, channel, region, category
),

returned as (
    select
        cast(returns.returned_at as date) as sales_date,
        lines.channel,
        lines.region,
        lines.category,
        count(distinct lines.order_id) as returned_orders,
        sum(lines.quantity) as returned_units,
        sum(lines.line_amount_reporting) as returned_revenue
    from returns
    inner join lines using (order_id)
    group by cast(returns.returned_at as date), lines.channel, lines.region, lines.category
),

joined as (
    select
        sales_date,
        channel,
        region,
        category,
        coalesce(sold.orders, 0) as orders,
        coalesce(sold.units, 0) as units,
        coalesce(sold.gross_revenue, 0) as gross_revenue,
        coalesce(returned.returned_orders, 0) as returned_orders,
        coalesce(returned.returned_units, 0) as returned_units,
        coalesce(returned.returned_revenue, 0) as returned_revenue
    from sold
    full outer join returned using (sales_date, channel, region, category)
)

select
    concat_ws('|', cast(sales_date as string), channel, region, category) as sales_key,
    sales_date,
    channel,
    region,
    category,
    cast(orders as bigint) as orders,
    cast(units as bigint) as units,
    cast(gross_revenue as decimal(18, 2)) as gross_revenue,
    cast(returned_orders as bigint) as returned_orders,
    cast(returned_units as bigint) as returned_units,
    cast(returned_revenue as decimal(18, 2)) as returned_revenue,
    cast(gross_revenue - returned_revenue as decimal(18, 2)) as net_revenue,
    '{{ var("reporting_currency") }}' as reporting_currency
from joined
