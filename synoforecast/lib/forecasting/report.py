"""Reading the published forecasts back for people (the CLI's table)."""

from __future__ import annotations

import polars as pl

from synoforecast.lib.warehouse.connection import query_frame


def latest_forecasts(url: str) -> pl.DataFrame:
    """The next-quarter forecasts of the latest as-of quarter in forecast.forecasts."""
    return query_frame(
        url,
        """
        select cohort, series_id, metric, as_of_label, target_label, model, yhat, yhat_lo_80, yhat_hi_80
          from forecast.forecasts
         where as_of_quarter = (select max(as_of_quarter) from forecast.forecasts)
         order by cohort, series_id, metric""",
    )
