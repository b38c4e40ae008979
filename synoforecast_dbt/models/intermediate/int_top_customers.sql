-- The current top-customer set used by the marts.
-- * If the workbook has a Top Customers sheet (stg_top_customers has rows): exactly
--   that list (source = 'workbook').
-- * Otherwise: the `top_customers_n` customers with the largest positive SVR-RM revenue
--   over the last 4 quarters present in stg_svr_rm (source = 'trailing_revenue'; ties
--   broken by customer_id).
with listed as (

    select customer_id from {{ ref('stg_top_customers') }}

),

last_quarters as (

    select quarter_start
    from (select distinct quarter_start from {{ ref('stg_svr_rm') }}) q
    order by quarter_start desc
    limit 4

),

trailing_revenue as (

    select
        customer_id,
        sum(revenue_usd) as trailing_revenue_usd
    from {{ ref('stg_svr_rm') }}
    where quarter_start in (select lq.quarter_start from last_quarters lq)
    group by customer_id

),

ranked as (

    select
        customer_id,
        trailing_revenue_usd,
        row_number() over (order by trailing_revenue_usd desc, customer_id asc) as revenue_rank
    from trailing_revenue
    where trailing_revenue_usd > 0

)

select
    l.customer_id,
    'workbook' as source,
    r.revenue_rank,
    coalesce(t.trailing_revenue_usd, 0)::numeric(18, 2) as trailing_revenue_usd
from listed l
left join trailing_revenue t on t.customer_id = l.customer_id
left join ranked r on r.customer_id = l.customer_id

union all

select
    customer_id,
    'trailing_revenue' as source,
    revenue_rank,
    trailing_revenue_usd::numeric(18, 2) as trailing_revenue_usd
from ranked
where revenue_rank <= {{ var('top_customers_n') | int }}
    and not exists (select 1 from listed)
