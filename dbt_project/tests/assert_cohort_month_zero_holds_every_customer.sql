-- Month 0 of every cohort retains the whole cohort, and the cohorts together hold every customer with a live
-- order.
with month_zero as (
    select sum(cohort_size) as cohort_customers, sum(active_customers) as active_customers
    from {{ ref('fct_customer_cohorts') }}
    where months_since_first = 0
),

customers as (
    select count(distinct customer_id) as customers
    from {{ ref('int_orders') }}
    where placed_at is not null and status != 'cancelled' and customer_id is not null
)

select *
from month_zero cross join customers
where month_zero.cohort_customers != customers.customers
    or month_zero.active_customers != month_zero.cohort_customers
