{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='quarter_start',
        on_schema_change='fail',
        pre_hook="{{ delete_quarter_range() }}",
        indexes=[{'columns': ['quarter_start']}]
    )
}}

-- Consumer / desktop NAS sale-out lines, cleaned; region/tier back-filled from the reference tables.
-- A table, cleaned once per run for the run's quarters, like stg_svr_rm.
{{ stage_sales('consumer') }}
