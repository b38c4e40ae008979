-- Consumer / desktop NAS sale-out lines, cleaned; region/tier back-filled from the reference tables.
-- An incremental table (dbt_project.yml), cleaned once per run for the run's quarters, like stg_svr_rm.
{{ stage_sales('consumer') }}
