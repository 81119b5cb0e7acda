-- One row per customer: gold.customer_360 with RFM scores and segment, and the monthly cohort of the first order.
-- Scores 1-5 cut at the quintiles of the customers with at least one live order (percentile_approx: an
-- aggregate, no global sort): recency in days before the newest order of any customer (5 = most recent),
-- frequency in live orders, monetary in lifetime value. A customer whose orders were all cancelled is
-- `no_live_orders`.
with customers as (
    select * from {{ ref('stg_gold__customer_360') }}
),

as_of as (
    select max(last_order_at) as as_of_at from customers
),

scored_input as (
    select
        customers.*,
        datediff(as_of.as_of_at, customers.last_order_at) as recency_days
    from customers cross join as_of
),

cuts as (
    select
        percentile_approx(recency_days, array(0.2, 0.4, 0.6, 0.8)) as recency_cuts,
        percentile_approx(orders, array(0.2, 0.4, 0.6, 0.8)) as frequency_cuts,
        percentile_approx(lifetime_value, array(0.2, 0.4, 0.6, 0.8)) as monetary_cuts
    from scored_input
    where orders > 0
),

scored as (
    select
        scored_input.*,
        case when orders > 0 then 5 - size(filter(recency_cuts, c -> c < recency_days)) end as r_score,
        case when orders > 0 then 1 + size(filter(frequency_cuts, c -> c < orders)) end as f_score,
        case when orders > 0 then 1 + size(filter(monetary_cuts, c -> c < lifetime_value)) end as m_score
    from scored_input cross join cuts
)

select
    customer_id,
    orders,
    cancelled_orders,
    revenue,
    refunds,
    lifetime_value,
    reporting_currency,
    channels_used,
    first_order_at,
    last_order_at,
    last_activity_at,
    cast(date_trunc('month', first_order_at) as date) as first_order_month,
    recency_days,
    r_score,
    f_score,
    m_score,
    {{ rfm_segment('r_score', 'f_score') }} as rfm_segment
from scored
