-- Monthly C2 cloud-service subscription rows, cleaned (macros/stage_c2.sql).
{{ stage_c2('raw') }}
