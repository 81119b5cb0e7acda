{#- A model's `schema` config names its database as is (`marts`, not dbt's default `<target schema>_marts`):
    staging, intermediate, marts and snapshots are databases of the lakehouse catalog beside bronze/silver/gold. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
