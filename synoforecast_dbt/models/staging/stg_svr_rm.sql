-- SVR-RM (rack-mount server) sale-out lines, cleaned (macros/stage_sales.sql); region/tier
-- back-filled from the reference tables. An incremental table (dbt_project.yml), cleaned once
-- per run for the run's quarters: every SVR-RM mart reads it, and as a view each of them re-ran
-- the cleaning over all rows.
{{ stage_sales('svr_rm') }}
