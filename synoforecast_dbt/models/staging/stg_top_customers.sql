-- The top-customer list of the latest snapshot quarter present in raw.top_customers
-- (one row per customer id). Empty when the workbook has no Top Customers sheet.
with latest as (

    select *
    from {{ source('raw', 'top_customers') }}
    where quarter_start = (select max(t.quarter_start) from {{ source('raw', 'top_customers') }} t)

)

select distinct on (btrim(customer_id))
    btrim(customer_id) as customer_id,
    {{ clean_text('customer') }} as customer,
    {{ clean_text('segment') }} as segment,
    {{ clean_text('account_owner') }} as account_owner,
    quarter_start,
    quarter_label,
    snapshot_id
from latest
where {{ clean_text('customer_id') }} is not null
order by btrim(customer_id), {{ clean_text('customer') }} nulls last
