{#
  The sale-out aggregate shared by the quarterly sales marts: one row per quarter (and
  per `dimension` when given, 'Unknown' where the line has none), over the run's quarter
  range. units / revenue_usd are net of returns; return_units counts returned units
  (lines with units < 0) as a positive number; active_customers counts customers with
  at least one purchase line (units > 0).
#}
{% macro sales_quarterly(source_model, dimension=none) %}

with lines as (

    select
        *{% if dimension %},
        coalesce({{ dimension }}, 'Unknown') as dimension_key{% endif %}
    from {{ ref(source_model) }}
    where {{ quarter_range_filter('quarter_start') }}

)

select
    quarter_start,
    max(quarter_label) as quarter_label,
    {% if dimension %}dimension_key as {{ dimension }},
    {% endif %}sum(units)::bigint as units,
    sum(revenue_usd)::numeric(18,2) as revenue_usd,
    count(*)::bigint as lines,
    (count(distinct customer_id) filter (where units > 0))::bigint as active_customers,
    coalesce(sum(-units) filter (where units < 0), 0)::bigint as return_units
from lines
group by quarter_start{% if dimension %}, dimension_key{% endif %}

{% endmacro %}
