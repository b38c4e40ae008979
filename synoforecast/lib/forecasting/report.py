"""Reading the published forecasts back for people (the CLI's table)."""

from __future__ import annotations

import polars as pl

from synoforecast.lib.warehouse.connection import query_frame


def latest_forecasts(url: str) -> pl.DataFrame:
    """The next-quarter forecasts of the latest as-of quarter in forecast.forecasts, with each
    series' name; within a cohort its total first, then by revenue, largest first."""
    from synoforecast.lib.warehouse.analyst_views import with_names

    rows = query_frame(
        url,
        """
        select cohort, series_id, metric, as_of_label, target_label, model, yhat, yhat_lo_80, yhat_hi_80
          from forecast.forecasts
         where as_of_quarter = (select max(as_of_quarter) from forecast.forecasts)
         order by cohort, series_id, metric""",
    )
    if rows.is_empty():
        return rows
    revenue = rows.filter(pl.col("metric") == "revenue").select("cohort", "series_id", rank=pl.col("yhat"))
    is_total = pl.col("series_id").is_in(["total", "All C2"])
    return (
        with_names(url, rows)
        .join(revenue, on=["cohort", "series_id"], how="left")
        .sort(["cohort", is_total, "rank", "series_id", "metric"], descending=[False, True, True, False, False])
        .drop("rank")
    )
