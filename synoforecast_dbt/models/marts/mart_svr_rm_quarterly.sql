{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='quarter_start'
    )
}}

-- SVR-RM sale-out per quarter. units / revenue_usd are net of returns; return_units is
-- the number of units returned (credit-note lines, units < 0) as a POSITIVE number.
-- active_customers: distinct customers with at least one purchase line (units > 0).

with lines as (

    select * from {{ ref('stg_svr_rm') }}
    where {{ quarter_range_filter('quarter_start') }}

)

select
    quarter_start,
    max(quarter_label) as quarter_label,
    sum(units)::bigint as units,
    sum(revenue_usd)::numeric(18,2) as revenue_usd,
    count(*)::bigint as lines,
    (count(distinct customer_id) filter (where units > 0))::bigint as active_customers,
    coalesce(sum(-units) filter (where units < 0), 0)::bigint as return_units
from lines
group by quarter_start
