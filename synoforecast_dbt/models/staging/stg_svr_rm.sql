-- SVR-RM (rack-mount server) sale-out lines, cleaned; region/tier back-filled from the reference tables.
{{ stage_sales('svr_rm') }}
