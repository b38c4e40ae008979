"""Reading the published landing back for people: the CLI, the landing asset's metadata and
the weekly summary all ask these queries of `forecast.landing` / `forecast.landing_evaluation`.

"vs forecast" is the landing against the quarter-start forecast, in percent; computed here
once so every reader shows the same number.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from synoforecast.lib.forecasting.cohorts import ALL_C2
from synoforecast.lib.warehouse.connection import query_frame

# The series a summary leads with: the SVR-RM total and All C2
HEADLINES = (("svr_rm_overall", "total"), ("c2_scorecard", ALL_C2))


def with_change_pct(landing: pl.DataFrame) -> pl.DataFrame:
    """`change_pct`: the landing against the quarter-start forecast in percent (null without one)."""
    start = pl.col("forecast_start")
    return landing.with_columns(
        change_pct=pl.when(start.is_not_null() & (start != 0)).then((pl.col("yhat") / start - 1) * 100)
    )


def headline_rows(landing: pl.DataFrame) -> pl.DataFrame:
    """The HEADLINES series of a landing frame, SVR-RM first, revenue before units."""
    wanted = pl.lit(False)
    for cohort, series in HEADLINES:
        wanted = wanted | ((pl.col("cohort") == cohort) & (pl.col("series_id") == series))
    return landing.filter(wanted).sort("cohort", "metric", descending=True)


def _cutoff_clause(cutoff: dt.date | str | None) -> tuple[str, tuple]:
    if cutoff is None:
        return "(select max(cutoff_date) from forecast.landing)", ()
    return "%s::date", (str(cutoff),)


def landing_at(url: str, cutoff: dt.date | str | None = None) -> pl.DataFrame:
    """forecast.landing at a cut-off (default the latest), with change_pct and series_name."""
    from synoforecast.lib.warehouse.analyst_views import with_names

    which, params = _cutoff_clause(cutoff)
    return with_names(
        url,
        with_change_pct(
            query_frame(
                url,
                f"select * from forecast.landing where cutoff_date = {which} order by cohort, series_id, metric",
                params,
            )
        ),
    )


def landing_evaluation_at(url: str, cutoff: dt.date | str | None = None) -> pl.DataFrame:
    """forecast.landing_evaluation at a cut-off (default the latest landing's)."""
    which, params = _cutoff_clause(cutoff)
    return query_frame(
        url,
        f"select * from forecast.landing_evaluation where cutoff_date = {which} "
        "order by cohort, metric, level, week_of_quarter",
        params,
    )
