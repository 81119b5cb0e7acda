{#- RFM segment from the recency and frequency scores (1-5); null scores (no live order) -> no_live_orders. -#}
{% macro rfm_segment(r_score, f_score) -%}
    case
        when {{ r_score }} is null or {{ f_score }} is null then 'no_live_orders'
        when {{ r_score }} >= 4 and {{ f_score }} >= 4 then 'champions'
        when {{ r_score }} >= 4 and {{ f_score }} <= 1 then 'new_customers'
        when {{ r_score }} >= 3 and {{ f_score }} >= 3 then 'loyal'
        when {{ r_score }} <= 2 and {{ f_score }} >= 3 then 'at_risk'
        when {{ r_score }} <= 2 then 'hibernating'
        else 'potential_loyalists'
    end
{%- endmacro %}
