{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='quarter_start'
    )
}}

-- Consumer / desktop NAS sale-out per quarter (consumer trend cohort). units /
-- revenue_usd are net of returns; active_customers counts customers with at least one
-- purchase line (units > 0).

with lines as (

    select * from {{ ref('stg_consumer') }}
    where {{ quarter_range_filter('quarter_start') }}

)

select
    quarter_start,
    max(quarter_label) as quarter_label,
    sum(units)::bigint as units,
    sum(revenue_usd)::numeric(18,2) as revenue_usd,
    count(*)::bigint as lines,
    (count(distinct customer_id) filter (where units > 0))::bigint as active_customers
from lines
group by quarter_start
