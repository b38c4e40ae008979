-- Country -> region: the versioned seed, overridden country by country by the Region Map
-- sheet of the latest quarter present in raw.region_map. The sheet's Country may be an
-- ISO code or an English name; it is resolved against the seed (either spelling,
-- case/space-insensitive) so an override replaces the seed row of the same country.
-- One row per country_key (= country_code, or the upper-cased name when the country is
-- not in the seed and is not a 2-letter code).
with seed as (

    select
        upper(btrim(country_code)) as country_code,
        {{ clean_text('country_name') }} as country_name,
        {{ clean_region('region') }} as region
    from {{ ref('region_map') }}
    where {{ clean_text('country_code') }} is not null

),

workbook_raw as (

    select
        upper(regexp_replace(btrim(country), '\s+', ' ', 'g')) as country_upper,
        btrim(country) as country,
        {{ clean_region('region') }} as region
    from {{ source('raw', 'region_map') }}
    where quarter_start = (select max(r.quarter_start) from {{ source('raw', 'region_map') }} r)
        and {{ clean_text('country') }} is not null
        and {{ clean_text('region') }} is not null

),

workbook_resolved as (

    select
        coalesce(
            s.country_code,
            case when length(w.country_upper) = 2 then w.country_upper end
        ) as country_code,
        coalesce(
            s.country_name,
            case when length(w.country_upper) <> 2 then w.country end
        ) as country_name,
        w.region,
        -- a row naming the country by code wins over one naming it by name
        case when length(w.country_upper) = 2 then 1 else 2 end as priority
    from workbook_raw w
    left join seed s
        on w.country_upper in (s.country_code, upper(s.country_name))

),

workbook as (

    select distinct on (coalesce(country_code, upper(country_name)))
        coalesce(country_code, upper(country_name)) as country_key,
        country_code,
        country_name,
        region
    from workbook_resolved
    order by coalesce(country_code, upper(country_name)), priority, region

)

select country_key, country_code, country_name, region, 'workbook' as source
from workbook
union all
select s.country_code as country_key, s.country_code, s.country_name, s.region, 'seed' as source
from seed s
where not exists (select 1 from workbook w where w.country_key = s.country_code)
