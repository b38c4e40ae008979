-- SVR-RM sale-out per quarter and customer (customer_id is the key; customer is the
-- latest spelling seen). is_top_customer reflects the CURRENT top-customer set
-- (int_top_customers: the workbook's Top Customers sheet, else the top_customers_n
-- largest customers by revenue over the last 4 quarters), as of the build.

with lines as (

    select * from {{ ref('stg_svr_rm') }}
    where {{ quarter_range_filter('quarter_start') }}

),

latest_names as (

    select distinct on (customer_id) customer_id, customer
    from {{ ref('stg_svr_rm') }}
    where customer is not null
    order by customer_id asc, quarter_start desc, sale_date desc, source_row desc

),

top_customers as (

    select distinct customer_id from {{ ref('int_top_customers') }}

),

listed_names as (

    select customer_id, customer from {{ ref('stg_top_customers') }}

),

per_customer as (

    select
        quarter_start,
        max(quarter_label) as quarter_label,
        customer_id,
        sum(units)::bigint as units,
        sum(revenue_usd)::numeric(18, 2) as revenue_usd,
        count(*)::bigint as lines
    from lines
    group by quarter_start, customer_id

)

select
    p.quarter_start,
    p.quarter_label,
    p.customer_id,
    coalesce(n.customer, ln.customer) as customer,
    (t.customer_id is not null) as is_top_customer,
    p.units,
    p.revenue_usd,
    p.lines
from per_customer p
left join latest_names n on n.customer_id = p.customer_id
left join listed_names ln on ln.customer_id = p.customer_id
left join top_customers t on t.customer_id = p.customer_id
