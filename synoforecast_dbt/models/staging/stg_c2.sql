-- Monthly C2 cloud-service subscription rows, cleaned (macros/stage_c2.sql).
-- An incremental table (dbt_project.yml), cleaned once per run for the run's quarters, like stg_svr_rm.
{{ stage_c2('raw') }}
