{#-
  Shared body of stg_c2 and stg_running_c2: monthly C2 cloud-service subscription rows,
  cleaned (month truncated to its first day, service spelling collapsed).
-#}
{% macro stage_c2(source_name='raw') %}
select
    date_trunc('month', month)::date as month,
    btrim(customer_id) as customer_id,
    {{ clean_text('customer') }} as customer,
    {{ clean_region('region') }} as region,
    regexp_replace(btrim(service), '\s+', ' ', 'g') as service,
    {{ clean_text('plan') }} as plan,
    seats,
    mrr_usd,
    source_row,
    quarter_start,
    quarter_label,
    snapshot_id
from {{ source(source_name, 'c2') }}
{{ where_run_quarters_if_incremental() }}
{% endmacro %}
