-- SVR-RM sale-out per quarter. Measures: see macros/sales_quarterly.sql.
{{ sales_quarterly('stg_svr_rm') }}
