{#-
  Quarter-range helpers driven by the `start_quarter` / `end_quarter` bounds (inclusive,
  on quarter_start, 'YYYY-MM-DD'). Values are validated before they reach SQL.
  Dagster passes them as SYNOFORECAST_DBT_START_QUARTER / _END_QUARTER environment
  variables, not --vars: dbt re-parses the whole project whenever --vars change (4 s
  instead of 2), but only the files that read an env var when that changes. Run by hand,
  `--vars '{"start_quarter": ..., "end_quarter": ...}'` works as before.
-#}

{% macro quarter_var(name) -%}
    {%- set value = (env_var('SYNOFORECAST_DBT_' ~ (name | upper), var(name)) | string | trim) -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value) -%}
        {{ exceptions.raise_compiler_error(
            "var '" ~ name ~ "' must be a 'YYYY-MM-DD' date string, got '" ~ value ~ "'") }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}


{% macro quarter_range_filter(column='quarter_start') -%}
    {%- set start = quarter_var('start_quarter') -%}
    {%- set end = quarter_var('end_quarter') -%}
    {%- if start > end -%}
        {{ exceptions.raise_compiler_error(
            "start_quarter (" ~ start ~ ") is after end_quarter (" ~ end ~ ")") }}
    {%- endif -%}
    {{ column }} between '{{ start }}'::date and '{{ end }}'::date
{%- endmacro %}


{#-
  Pre-hook of every mart (runs inside the model's transaction, before the
  delete+insert on unique_key quarter_start): delete all rows of the requested range,
  so a quarter whose source rows disappeared does not keep stale mart rows. Rows
  outside the range are never touched. Renders to nothing on the first build and on
  --full-refresh, where the table is (re)created from the filtered query.
-#}
{% macro delete_quarter_range() -%}
    {%- if execute and is_incremental() -%}
        delete from {{ this }} where {{ quarter_range_filter('quarter_start') }}
    {%- endif -%}
{%- endmacro %}


{#-
  Filter of the staging tables (stg_svr_rm, stg_consumer, stg_c2): an incremental build
  cleans only the run's quarters; the first build (or a --full-refresh, or the view an
  older release left in its place) cleans every raw row, whatever the range, because
  the marts read all of staging (first purchases, latest names, the top-customer set).
  Renders to nothing in the views that share the macros (stg_running_*).
-#}
{% macro where_run_quarters_if_incremental(column='quarter_start') -%}
    {%- if is_incremental() -%}
        where {{ quarter_range_filter(column) }}
    {%- endif -%}
{%- endmacro %}
