-- Consumer / desktop NAS sale-out per quarter (consumer trend cohort). Measures: see macros/sales_quarterly.sql.
{{ sales_quarterly('stg_consumer') }}
