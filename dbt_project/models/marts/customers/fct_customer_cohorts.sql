-- Monthly cohorts: customers by the month of their first live (not cancelled) order, and per month since then
-- how many of them placed a live order (retention) and the revenue they brought (reporting currency).
with orders as (
    select
        customer_id,
        cast(date_trunc('month', placed_at) as date) as order_month,
        total_amount_reporting
    from {{ ref('int_orders') }}
    where placed_at is not null and status != 'cancelled' and customer_id is not null
),

firsts as (
    select customer_id, min(order_month) as cohort_month
    from orders
    group by customer_id
),

activity as (
    select
        firsts.cohort_month,
        cast(months_between(orders.order_month, firsts.cohort_month) as int) as months_since_first,
        count(distinct orders.customer_id) as active_customers,
        sum(orders.total_amount_reporting) as revenue
    from orders inner join firsts using (customer_id)
    group by firsts.cohort_month, cast(months_between(orders.order_month, firsts.cohort_month) as int)
),

sizes as (
    select cohort_month, count(*) as cohort_size
    from firsts
    group by cohort_month
)

select
    concat_ws('|', cast(activity.cohort_month as string), cast(activity.months_since_first as string))
        as cohort_key,
    activity.cohort_month,
    activity.months_since_first,
    cast(sizes.cohort_size as bigint) as cohort_size,
    cast(activity.active_customers as bigint) as active_customers,
    cast(activity.active_customers / sizes.cohort_size as decimal(9, 4)) as retention_rate,
    cast(activity.revenue as decimal(18, 2)) as revenue,
    '{{ var("reporting_currency") }}' as reporting_currency
from activity inner join sizes using (cohort_month)
