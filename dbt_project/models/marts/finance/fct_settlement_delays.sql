-- Captured payments per processor x capture day: how many were settled, how many are still unsettled, and the
-- delay from capture to the first settlement line in hours.
with captures as (
    select
        payment_id,
        min_by(processor, event_time) as processor,
        min(event_time) as captured_at
    from {{ ref('stg_silver__payments_events') }}
    where event_type = 'captured' and payment_id is not null
    group by payment_id
),

settlements as (
    select payment_id, min(settled_at) as settled_at
    from {{ ref('stg_silver__settlements') }}
    group by payment_id
),

delays as (
    select
        captures.processor,
        cast(captures.captured_at as date) as capture_date,
        settlements.settled_at,
        (unix_micros(settlements.settled_at) - unix_micros(captures.captured_at)) / 3600000000.0 as delay_hours
    from captures
    left join settlements using (payment_id)
)

select
    concat_ws('|', processor, cast(capture_date as string)) as delay_key,
    processor,
    capture_date,
    cast(count(*) as bigint) as captured_payments,
    cast(count(settled_at) as bigint) as settled_payments,
    cast(count(*) - count(settled_at) as bigint) as unsettled_payments,
    cast(avg(delay_hours) as decimal(18, 4)) as avg_delay_hours,
    cast(percentile_approx(delay_hours, 0.5) as decimal(18, 4)) as median_delay_hours,
    cast(max(delay_hours) as decimal(18, 4)) as max_delay_hours
from delays
group by processor, capture_date
