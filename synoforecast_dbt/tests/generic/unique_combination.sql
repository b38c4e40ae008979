{#-
  unique_combination: no two rows of the model share the same values of `columns`
  (a list of column names: the model's grain). Fails with one row per duplicated key.
  Usage:
    data_tests:
      - unique_combination:
          arguments:
            columns: [quarter_start, tier]
-#}
{% test unique_combination(model, columns) %}
{%- if columns is string -%}
    {%- set columns = [columns] -%}
{%- endif -%}
{%- if (columns | length) == 0 -%}
    {{ exceptions.raise_compiler_error("unique_combination needs a non-empty 'columns' list") }}
{%- endif %}

select
    {{ columns | join(',\n    ') }},
    count(*) as n_rows
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
