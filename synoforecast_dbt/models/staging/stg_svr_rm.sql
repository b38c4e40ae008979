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

-- SVR-RM (rack-mount server) sale-out lines, cleaned; region/tier back-filled from the reference tables.
-- A table, cleaned once per run for the run's quarters (macros/stage_sales.sql): every SVR-RM mart
-- reads it, and as a view each of them re-ran the cleaning over all rows.
{{ stage_sales('svr_rm') }}
