select
    sku,
    channel,
    warehouse_id,
    cast(origin_date as date) as origin_date,
    cast(forecast_date as date) as forecast_date,
    cast(horizon as int) as horizon,
    cast(forecast as double) as forecast_units,
    cast(p10 as double) as forecast_p10,
    cast(p50 as double) as forecast_p50,
    cast(p90 as double) as forecast_p90,
    model_name,
    model_version,
    scored_at
from {{ source('gold', 'demand_forecast') }}
