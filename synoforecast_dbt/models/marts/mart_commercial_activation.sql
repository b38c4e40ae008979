-- Commercial activation snapshot, one row per SVR-RM quarter.
-- * active_customers: distinct customers with a purchase line (units > 0)
-- * new_customers: active customers whose first purchase EVER (over all of stg_svr_rm,
--   not only the requested range) is in this quarter; returning_customers = the others
-- * c2_attach_rate: share of active customers with seats > 0 on any C2 service in the
--   quarter; null when the quarter has no C2 data at all (sheet absent) or no buyers
-- * top_customer_revenue_share: revenue of the current top-customer set
--   (int_top_customers) / total revenue; null when total revenue is 0
-- * units / revenue_usd: all lines, net of returns

with all_lines as (

    select * from {{ ref('stg_svr_rm') }}

),

first_purchase as (

    select customer_id, min(quarter_start) as first_quarter
    from all_lines
    where units > 0
    group by customer_id

),

lines as (

    select * from all_lines
    where {{ quarter_range_filter('quarter_start') }}

),

quarters as (

    select
        quarter_start,
        max(quarter_label) as quarter_label,
        sum(units)::bigint as units,
        sum(revenue_usd)::numeric(18, 2) as revenue_usd
    from lines
    group by quarter_start

),

buyers as (

    select distinct quarter_start, customer_id
    from lines
    where units > 0

),

c2_quarters as (

    select distinct quarter_start
    from {{ ref('stg_c2') }}
    where {{ quarter_range_filter('quarter_start') }}

),

c2_subscribed as (

    select distinct quarter_start, customer_id
    from {{ ref('stg_c2') }}
    where {{ quarter_range_filter('quarter_start') }}
        and seats > 0

),

buyer_stats as (

    select
        b.quarter_start,
        count(*)::bigint as active_customers,
        (count(*) filter (where fp.first_quarter = b.quarter_start))::bigint as new_customers,
        (count(*) filter (where fp.first_quarter < b.quarter_start))::bigint as returning_customers,
        (count(*) filter (where cs.customer_id is not null))::bigint as customers_with_c2
    from buyers b
    join first_purchase fp on fp.customer_id = b.customer_id
    left join c2_subscribed cs
        on cs.quarter_start = b.quarter_start
            and cs.customer_id = b.customer_id
    group by b.quarter_start

),

top_customers as (

    select distinct customer_id from {{ ref('int_top_customers') }}

),

top_revenue as (

    select l.quarter_start, sum(l.revenue_usd) as revenue_usd
    from lines l
    join top_customers t on t.customer_id = l.customer_id
    group by l.quarter_start

)

select
    q.quarter_start,
    q.quarter_label,
    coalesce(bs.active_customers, 0)::bigint as active_customers,
    coalesce(bs.new_customers, 0)::bigint as new_customers,
    coalesce(bs.returning_customers, 0)::bigint as returning_customers,
    case
        when c2q.quarter_start is not null
            then round(bs.customers_with_c2::numeric / nullif(bs.active_customers, 0), 6)
    end as c2_attach_rate,
    round(coalesce(tr.revenue_usd, 0) / nullif(q.revenue_usd, 0), 6) as top_customer_revenue_share,
    q.units,
    q.revenue_usd
from quarters q
left join buyer_stats bs on bs.quarter_start = q.quarter_start
left join c2_quarters c2q on c2q.quarter_start = q.quarter_start
left join top_revenue tr on tr.quarter_start = q.quarter_start
