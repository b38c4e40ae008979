"""dbt vars for a range of quarter partitions."""

from __future__ import annotations

import datetime as dt

import pytest

from synoforecast.lib.transform.dbt_vars import dbt_vars


def test_range_of_quarters():
    assert dbt_vars(dt.date(2024, 10, 1), dt.date(2025, 7, 1), 20) == {
        "start_quarter": "2024-10-01",
        "end_quarter": "2025-07-01",
        "top_customers_n": 20,
    }


def test_single_quarter_and_n_is_an_int():
    out = dbt_vars(dt.date(2025, 7, 1), dt.date(2025, 7, 1), "15")
    assert out == {"start_quarter": "2025-07-01", "end_quarter": "2025-07-01", "top_customers_n": 15}
    assert type(out["top_customers_n"]) is int


def test_reversed_range_is_refused():
    with pytest.raises(ValueError, match="empty quarter range 2025-07-01..2025-04-01"):
        dbt_vars(dt.date(2025, 7, 1), dt.date(2025, 4, 1), 20)


def test_quarter_bounds_travel_as_environment_so_dbt_keeps_its_partial_parse():
    from synoforecast.lib.transform.dbt_vars import split_for_partial_parsing

    variables, env = split_for_partial_parsing(dbt_vars(dt.date(2024, 10, 1), dt.date(2025, 7, 1), 20))
    assert variables == {"top_customers_n": 20}  # identical from run to run: dbt's partial parse stays valid
    assert env == {"SYNOFORECAST_DBT_START_QUARTER": "2024-10-01", "SYNOFORECAST_DBT_END_QUARTER": "2025-07-01"}
