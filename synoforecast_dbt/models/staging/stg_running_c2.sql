-- The quarter in progress of the latest snapshot: C2 months, cleaned as stg_c2 (forecast/landing).
{{ stage_c2('raw_running') }}
