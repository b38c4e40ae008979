{#-
  sums_match: per group (default: per quarter_start), the sums of `columns` in the
  model equal those in `compare_model` (e.g. the tier breakdown adds up to the overall
  mart). Only quarters inside the start_quarter..end_quarter vars are compared, i.e.
  the quarters the current run (re)built. A group present on one side only fails.
  Usage:
    data_tests:
      - sums_match:
          arguments:
            compare_model: ref('mart_svr_rm_quarterly')
            columns: [units, revenue_usd, lines]
-#}
{% test sums_match(model, compare_model, columns, group_by=['quarter_start']) %}
{%- set keys = group_by | join(', ') -%}

with left_side as (

    select {{ keys }}
        {%- for c in columns %}, sum({{ c }}) as {{ c }}{% endfor %}
    from {{ model }}
    where {{ quarter_range_filter('quarter_start') }}
    group by {{ keys }}

),

right_side as (

    select {{ keys }}
        {%- for c in columns %}, sum({{ c }}) as {{ c }}{% endfor %}
    from {{ compare_model }}
    where {{ quarter_range_filter('quarter_start') }}
    group by {{ keys }}

)

select
    {%- for k in group_by %}
    coalesce(l.{{ k }}, r.{{ k }}) as {{ k }},
    {%- endfor %}
    {%- for c in columns %}
    l.{{ c }} as model_{{ c }},
    r.{{ c }} as compare_{{ c }}{{ "," if not loop.last }}
    {%- endfor %}
from left_side l
full outer join right_side r
    on {% for k in group_by %}l.{{ k }} = r.{{ k }}{{ " and " if not loop.last }}{% endfor %}
where
    {%- for c in columns %}
    l.{{ c }} is distinct from r.{{ c }}{{ " or" if not loop.last }}
    {%- endfor %}

{% endtest %}
