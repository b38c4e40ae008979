-- SVR-RM sale-out per quarter and region; adds up to mart_svr_rm_quarterly. Measures: see macros/sales_quarterly.sql.
{{ sales_quarterly('stg_svr_rm', 'region') }}
