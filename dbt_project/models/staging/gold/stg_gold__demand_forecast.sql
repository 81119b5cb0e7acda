select
    cast(forecast_date as date) as forecast_date,
    channel,
    cast(predicted_units as double) as predicted_units,
    model_name,
    model_version,
    scored_at
from {{ source('gold', 'demand_forecast') }}
