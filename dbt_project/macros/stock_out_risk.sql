{#- Stock-out risk of a sku x warehouse (see fct_inventory_risk). -#}
{% macro stock_out_risk(available, forecast_7d, avg_daily_demand) -%}
    case
        when {{ available }} <= 0 then 'out_of_stock'
        when {{ forecast_7d }} > 0 and {{ forecast_7d }} >= {{ available }} then 'high'
        when {{ avg_daily_demand }} > 0 and {{ avg_daily_demand }} * 14 >= {{ available }} then 'medium'
        else 'low'
    end
{%- endmacro %}
