-- Consumer / desktop NAS sale-out lines, cleaned; region/tier back-filled from the reference tables.
{{ stage_sales('consumer') }}
