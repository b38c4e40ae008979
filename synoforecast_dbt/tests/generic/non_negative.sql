{#-
  non_negative: the column is never below zero (nulls are not checked; add not_null).
  Usage on a column:
    data_tests:
      - non_negative
-#}
{% test non_negative(model, column_name) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} < 0

{% endtest %}
