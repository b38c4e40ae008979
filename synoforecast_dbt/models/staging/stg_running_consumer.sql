-- The quarter in progress of the latest snapshot: consumer lines, cleaned as stg_consumer (forecast/landing).
{{ stage_sales('consumer', 'raw_running') }}
