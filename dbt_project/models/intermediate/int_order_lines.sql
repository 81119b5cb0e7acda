-- One row per line of a placed order, with its product category and its amount in the reporting currency
-- (converted at the rate of the order's event time, like gold.sales).
{{ config(materialized='table') }}

with orders as (
    select * from {{ ref('int_orders') }} where placed_at is not null
),

products as (
    select * from {{ ref('stg_silver__products') }}
),

lines as (
    select
        orders.order_id,
        orders.customer_id,
        orders.status,
        orders.order_date,
        orders.channel,
        orders.region,
        orders.currency,
        orders.fx_rate,
        line_number,
        line
    from orders
    lateral view posexplode(orders.lines) exploded as line_number, line
)

select
    lines.order_id,
    lines.line_number,
    lines.customer_id,
    lines.status,
    lines.order_date,
    lines.channel,
    lines.region,
    lines.currency,
    lines.line.sku as sku,
    coalesce(products.category, 'unknown_sku') as category,
    cast(lines.line.quantity as bigint) as quantity,
    cast(lines.line.quantity * lines.line.unit_price - coalesce(lines.line.discount, 0) as decimal(18, 2))
        as line_amount,
    cast(
        (lines.line.quantity * lines.line.unit_price - coalesce(lines.line.discount, 0)) * lines.fx_rate
        as decimal(18, 2)
    ) as line_amount_reporting
from lines
left join products on lines.line.sku = products.sku
