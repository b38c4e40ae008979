-- C2 adoption per quarter and service, plus one 'All C2' row per quarter over all
-- services. Quarters come from the C2 sheet (no C2 rows in a quarter = no rows here).
-- * subscribers / seats: in the quarter's last month present in the C2 data (same month
--   for every service of the quarter), customers with seats > 0 / sum of seats
-- * revenue_usd: MRR summed over all months of the quarter
-- * svr_rm_customers: distinct SVR-RM buyers (a line with units > 0) in the quarter
-- * svr_rm_customers_with_c2: those with seats > 0 on that service in any month of the
--   quarter (any service for 'All C2')
-- * adoption_rate = svr_rm_customers_with_c2 / svr_rm_customers (null when no buyers)

with c2 as (

    select * from {{ ref('stg_c2') }}
    where {{ quarter_range_filter('quarter_start') }}

),

quarters as (

    select
        quarter_start,
        max(quarter_label) as quarter_label,
        max(month) as last_month
    from c2
    group by quarter_start

),

c2_services as (

    select quarter_start, month, customer_id, service, seats, mrr_usd from c2
    union all
    select quarter_start, month, customer_id, 'All C2' as service, seats, mrr_usd from c2

),

per_service as (

    select
        s.quarter_start,
        s.service,
        (count(distinct s.customer_id) filter (where s.month = q.last_month and s.seats > 0))::bigint as subscribers,
        coalesce(sum(s.seats) filter (where s.month = q.last_month), 0)::bigint as seats,
        sum(s.mrr_usd)::numeric(18, 2) as revenue_usd
    from c2_services s
    join quarters q on q.quarter_start = s.quarter_start
    group by s.quarter_start, s.service

),

buyers as (

    select distinct quarter_start, customer_id
    from {{ ref('stg_svr_rm') }}
    where {{ quarter_range_filter('quarter_start') }}
        and units > 0

),

buyer_counts as (

    select quarter_start, count(*)::bigint as svr_rm_customers
    from buyers
    group by quarter_start

),

subscribed as (

    select distinct quarter_start, service, customer_id
    from c2_services
    where seats > 0

),

buyers_with_c2 as (

    select
        b.quarter_start,
        s.service,
        count(*)::bigint as svr_rm_customers_with_c2
    from buyers b
    join subscribed s
        on s.quarter_start = b.quarter_start
            and s.customer_id = b.customer_id
    group by b.quarter_start, s.service

)

select
    p.quarter_start,
    q.quarter_label,
    p.service,
    p.subscribers,
    p.seats,
    p.revenue_usd,
    coalesce(bc.svr_rm_customers, 0)::bigint as svr_rm_customers,
    coalesce(bw.svr_rm_customers_with_c2, 0)::bigint as svr_rm_customers_with_c2,
    round(
        coalesce(bw.svr_rm_customers_with_c2, 0)::numeric / nullif(bc.svr_rm_customers, 0),
        6
    ) as adoption_rate
from per_service p
join quarters q on q.quarter_start = p.quarter_start
left join buyer_counts bc on bc.quarter_start = p.quarter_start
left join buyers_with_c2 bw
    on bw.quarter_start = p.quarter_start
        and bw.service = p.service
