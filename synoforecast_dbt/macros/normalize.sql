{#- Small normalisation helpers shared by the staging models. -#}

{# trimmed text, blank -> null #}
{% macro clean_text(expr) -%}
    nullif(btrim({{ expr }}), '')
{%- endmacro %}

{# matching key: trimmed, upper-cased, blank -> null #}
{% macro clean_key(expr) -%}
    nullif(upper(btrim({{ expr }})), '')
{%- endmacro %}

{# tier: 'T1'/'T2'/'T3' spelled in any case, blank -> null #}
{% macro clean_tier(expr) -%}
    nullif(upper(btrim({{ expr }})), '')
{%- endmacro %}

{#
  Region: canonical spelling of the known regions whatever the case/spacing
  ('emea ' -> 'EMEA', 'greater china' -> 'Greater China'); other values trimmed;
  blank -> null.
#}
{% macro clean_region(expr) -%}
    case upper(regexp_replace(btrim({{ expr }}), '\s+', ' ', 'g'))
        when '' then null
        when 'EMEA' then 'EMEA'
        when 'AMERICAS' then 'Americas'
        when 'APAC' then 'APAC'
        when 'GREATER CHINA' then 'Greater China'
        when 'JAPAN' then 'Japan'
        else nullif(btrim({{ expr }}), '')
    end
{%- endmacro %}
