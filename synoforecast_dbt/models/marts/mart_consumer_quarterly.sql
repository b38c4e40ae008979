{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='quarter_start'
    )
}}

-- Consumer / desktop NAS sale-out per quarter (consumer trend cohort). Measures: see macros/sales_quarterly.sql.
{{ sales_quarterly('stg_consumer') }}
