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

-- Monthly C2 cloud-service subscription rows, cleaned (macros/stage_c2.sql).
-- A table, cleaned once per run for the run's quarters, like stg_svr_rm.
{{ stage_c2('raw') }}
