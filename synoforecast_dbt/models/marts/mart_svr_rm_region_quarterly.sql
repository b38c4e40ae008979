{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='quarter_start'
    )
}}

-- SVR-RM sale-out per quarter and region ('Unknown' when the line has no region, even
-- after back-filling from the reference tables). Measures as in mart_svr_rm_quarterly;
-- units / revenue_usd / lines / return_units add up to it per quarter.

with lines as (

    select
        *,
        coalesce(region, 'Unknown') as region_key
    from {{ ref('stg_svr_rm') }}
    where {{ quarter_range_filter('quarter_start') }}

)

select
    quarter_start,
    max(quarter_label) as quarter_label,
    region_key as region,
    sum(units)::bigint as units,
    sum(revenue_usd)::numeric(18,2) as revenue_usd,
    count(*)::bigint as lines,
    (count(distinct customer_id) filter (where units > 0))::bigint as active_customers,
    coalesce(sum(-units) filter (where units < 0), 0)::bigint as return_units
from lines
group by quarter_start, region_key
