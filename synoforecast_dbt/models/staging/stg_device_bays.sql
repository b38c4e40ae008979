-- Model -> bays / tier / form factor: the versioned seed, overridden model by model by
-- the Device Bays sheet of the latest quarter present in raw.device_bays.
with seed as (

    select
        upper(btrim(model)) as model,
        bays,
        {{ clean_tier('tier') }} as tier,
        {{ clean_text('form_factor') }} as form_factor
    from {{ ref('device_bays') }}
    where {{ clean_text('model') }} is not null

),

workbook as (

    select distinct on (upper(btrim(model)))
        upper(btrim(model)) as model,
        bays,
        {{ clean_tier('tier') }} as tier,
        {{ clean_text('form_factor') }} as form_factor
    from {{ source('raw', 'device_bays') }}
    where quarter_start = (select max(d.quarter_start) from {{ source('raw', 'device_bays') }} d)
        and {{ clean_text('model') }} is not null
    -- duplicated models in the sheet: keep the most complete row, deterministically
    order by
        upper(btrim(model)),
        {{ clean_tier('tier') }} nulls last,
        bays desc nulls last,
        {{ clean_text('form_factor') }} nulls last

)

select model, bays, tier, form_factor, 'workbook' as source
from workbook
union all
select s.model, s.bays, s.tier, s.form_factor, 'seed' as source
from seed s
where not exists (select 1 from workbook w where w.model = s.model)
