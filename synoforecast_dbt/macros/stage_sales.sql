{#-
  Shared body of stg_svr_rm and stg_consumer (both sheets have the same layout).
  - model: upper/trim (matches stg_device_bays.model)
  - region: the row's region (canonical spelling) or, when blank, the region of its
    country from stg_region_map (country given as ISO code or English name)
  - tier: the row's tier (upper/trim) or, when blank, the tier of the model from
    stg_device_bays
  - is_unknown_model / is_unknown_country: passed through from the loader
-#}
{% macro stage_sales(source_table, source_name='raw') %}
with source as (

    select * from {{ source(source_name, source_table) }}
    {{ where_run_quarters_if_incremental() }}

),

region_map as (

    select * from {{ ref('stg_region_map') }}

),

-- one region per lookup key; a code match wins over a name match
country_lookup as (

    select distinct on (lookup_key) lookup_key, region
    from (
        select country_code as lookup_key, region, 1 as priority
        from region_map
        where country_code is not null
        union all
        select upper(country_name) as lookup_key, region, 2 as priority
        from region_map
        where country_name is not null
    ) keys
    order by lookup_key, priority, region

),

device_bays as (

    select model, tier from {{ ref('stg_device_bays') }}

),

cleaned as (

    select
        sale_date,
        {{ clean_region('region') }} as region_reported,
        {{ clean_text('country') }} as country,
        btrim(customer_id) as customer_id,
        {{ clean_text('customer') }} as customer,
        upper(btrim(model)) as model,
        {{ clean_tier('tier') }} as tier_reported,
        units,
        revenue_usd,
        {{ clean_text('channel') }} as channel,
        is_unknown_model,
        is_unknown_country,
        source_row,
        quarter_start,
        quarter_label,
        snapshot_id
    from source

)

select
    c.sale_date,
    coalesce(c.region_reported, cl.region) as region,
    case
        when c.region_reported is not null then 'reported'
        when cl.region is not null then 'region_map'
    end as region_source,
    c.country,
    c.customer_id,
    c.customer,
    c.model,
    coalesce(c.tier_reported, db.tier) as tier,
    case
        when c.tier_reported is not null then 'reported'
        when db.tier is not null then 'device_bays'
    end as tier_source,
    c.units,
    c.revenue_usd,
    c.channel,
    c.is_unknown_model,
    c.is_unknown_country,
    c.source_row,
    c.quarter_start,
    c.quarter_label,
    c.snapshot_id
from cleaned c
left join country_lookup cl
    on cl.lookup_key = upper(regexp_replace(c.country, '\s+', ' ', 'g'))
left join device_bays db
    on db.model = c.model
{% endmacro %}
