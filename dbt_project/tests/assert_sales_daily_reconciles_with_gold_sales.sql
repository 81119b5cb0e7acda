-- fct_sales_daily's placed units and revenue per day x channel x region equal gold.sales' (revenue converted per
-- line here and per order there: each line may round by half a cent).
with mart as (
    select sales_date, channel, region, sum(units) as units, sum(gross_revenue) as revenue
    from {{ ref('fct_sales_daily') }}
    where units > 0
    group by sales_date, channel, region
),

lines as (
    select order_date as sales_date, channel, region, count(*) as line_count
    from {{ ref('int_order_lines') }}
    group by order_date, channel, region
),

gold as (
    select order_date as sales_date, channel, region, sum(units) as units, sum(revenue_reporting) as revenue
    from {{ ref('stg_gold__sales') }}
    group by order_date, channel, region
)

select *
from mart
full outer join gold using (sales_date, channel, region)
left join lines using (sales_date, channel, region)
where mart.units is null
    or gold.units is null
    or mart.units != gold.units
    or abs(mart.revenue - gold.revenue) > 0.005 * coalesce(lines.line_count, 0) + 0.01
