-- The quarter in progress of the latest snapshot: SVR-RM lines, cleaned as stg_svr_rm (forecast/landing).
{{ stage_sales('svr_rm', 'raw_running') }}
