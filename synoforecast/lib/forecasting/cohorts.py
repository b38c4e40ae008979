"""Forecast cohorts: which mart feeds each, and how its series are formed as of a quarter.

Each cohort's history query returns `series_id, quarter_start, units, revenue`
(plus `is_top_customer` for the customer cohort). Series are then cut at the as-of
quarter so a backfill over past quarters is an honest rolling-origin backtest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

METRICS = ("units", "revenue")
SEPARATOR = "::"
ALL_OTHER = "all_other"
TOTAL = "total"
ALL_C2 = "All C2"


@dataclass(frozen=True)
class Cohort:
    name: str
    title: str
    marts: tuple[str, ...]  # dbt models (schema marts) the history comes from
    history_sql: str
    by_customer: bool = False
    # bottom-up hierarchy: this series_id is published as the sum of all the cohort's other series
    parent: str | None = None
    # top-down onto another cohort's published series (cohort name, series_id): this cohort's
    # series are scaled so that they add up to that series, per as-of quarter and metric
    top_down_to: tuple[str, str] | None = None
    # daily values for forecast/landing: series_id, day, units, revenue, with {svr_rm}, {consumer}
    # and {c2} standing for the staging relations (complete quarters, or the quarter in progress);
    # by-customer cohorts return customer ids, grouped as the quarterly forecasts group them; a
    # `parent` is not queried: the landing sums it from its published parts, as the forecasts do
    daily_sql: str = ""
    stock_metrics: tuple[str, ...] = ()  # levels (C2 seats at month end), not sums over the quarter
    # how a cut-off lines up with past quarters in the landing's profiles (lib/landing/model.py):
    # selling days (B2B), calendar days (retail sells every day), or months (one row per month)
    profile_alignment: str = "selling"


COHORTS: tuple[Cohort, ...] = (
    Cohort(
        "svr_rm_overall",
        "SVR-RM rack-mount servers: total and per tier (T1/T2/T3, Unknown)",
        ("mart_svr_rm_quarterly", "mart_svr_rm_tier_quarterly"),
        # lines of a model the tier map does not know are the part 'Unknown': the total counts
        # every SVR-RM line, as the customer and regional cohorts do (one SVR-RM total)
        """select 'total' as series_id, quarter_start, units::float8 as units, revenue_usd::float8 as revenue
             from marts.mart_svr_rm_quarterly
           union all
           select tier, quarter_start, units::float8, revenue_usd::float8
             from marts.mart_svr_rm_tier_quarterly""",
        parent=TOTAL,
        daily_sql="""select coalesce(tier, 'Unknown') as series_id, sale_date as day, sum(units)::float8 as units,
                            sum(revenue_usd)::float8 as revenue
                       from {svr_rm} group by 1, sale_date""",
    ),
    Cohort(
        "svr_rm_top_customers",
        "SVR-RM top customers, plus all other customers together",
        ("mart_svr_rm_customer_quarterly",),
        """select customer_id as series_id, quarter_start, units::float8 as units,
                  revenue_usd::float8 as revenue, is_top_customer
             from marts.mart_svr_rm_customer_quarterly""",
        by_customer=True,
        parent=TOTAL,
        # the customers add up to the SVR-RM total of svr_rm_overall: one total, not two models' sums
        top_down_to=("svr_rm_overall", TOTAL),
        daily_sql="""select customer_id as series_id, sale_date as day, sum(units)::float8 as units,
                            sum(revenue_usd)::float8 as revenue from {svr_rm} group by customer_id, sale_date""",
    ),
    Cohort(
        "regional",
        "SVR-RM by sales region",
        ("mart_svr_rm_region_quarterly",),
        """select region as series_id, quarter_start, units::float8 as units, revenue_usd::float8 as revenue
             from marts.mart_svr_rm_region_quarterly""",
        top_down_to=("svr_rm_overall", TOTAL),  # regions add up to the published SVR-RM total
        daily_sql="""select coalesce(region, 'Unknown') as series_id, sale_date as day, sum(units)::float8 as units,
                            sum(revenue_usd)::float8 as revenue
                       from {svr_rm} group by 1, sale_date""",
    ),
    Cohort(
        "consumer_trend",
        "Consumer (desktop NAS) trend",
        ("mart_consumer_quarterly",),
        """select 'total' as series_id, quarter_start, units::float8 as units, revenue_usd::float8 as revenue
             from marts.mart_consumer_quarterly""",
        daily_sql="""select 'total' as series_id, sale_date as day, sum(units)::float8 as units,
                            sum(revenue_usd)::float8 as revenue from {consumer} group by sale_date""",
        profile_alignment="calendar",
    ),
    Cohort(
        "c2_scorecard",
        "Synology C2 cloud services: seats (units) and revenue per service",
        ("mart_c2_adoption_quarterly",),
        """select service as series_id, quarter_start, seats::float8 as units, revenue_usd::float8 as revenue
             from marts.mart_c2_adoption_quarterly""",
        parent=ALL_C2,  # the mart's 'All C2' row sums every service; published as the sum of the services' forecasts
        daily_sql="""select service as series_id, month as day, sum(seats)::float8 as units,
                            sum(mrr_usd)::float8 as revenue from {c2} group by service, month""",
        stock_metrics=("units",),
        profile_alignment="month",
    ),
)

COHORTS_BY_NAME = {c.name: c for c in COHORTS}


def series_as_of(
    cohort: Cohort, history: pl.DataFrame, as_of: dt.date, top_as_of: dt.date | None = None
) -> pl.DataFrame:
    """Per-series quarterly values known at `as_of` (inclusive), one row per quarter from
    the series' first quarter to `as_of`: a quarter without sales (no mart row) is a zero,
    not a gap that statsforecast would close up (seasonal lags would then point at the
    wrong quarter and sparse series would never look intermittent).

    Top customers are the customers flagged as top in `top_as_of` (default `as_of`: the set
    a forecast made at `as_of` uses; scoring that forecast at the next quarter passes the
    forecast's own as-of quarter); everyone else is summed as all_other, and a `total`
    series (top customers + all_other) is added."""
    known = history.filter(pl.col("quarter_start") <= as_of).sort("series_id", "quarter_start")
    if known.is_empty():
        return known.select("series_id", "quarter_start", "units", "revenue")
    if not cohort.by_customer:
        return fill_gaps(known.select("series_id", "quarter_start", "units", "revenue"), as_of)
    flagged_at = as_of if top_as_of is None else top_as_of
    top = set(known.filter((pl.col("quarter_start") == flagged_at) & pl.col("is_top_customer"))["series_id"].to_list())
    grouped = known.with_columns(
        series_id=pl.when(pl.col("series_id").is_in(list(top))).then(pl.col("series_id")).otherwise(pl.lit(ALL_OTHER))
    )
    # cents summed as floats: round back to cents so the result does not depend on row order
    grouped = grouped.group_by("series_id", "quarter_start", maintain_order=True).agg(
        pl.col("units").sum().round(0), pl.col("revenue").sum().round(2)
    )
    grouped = fill_gaps(grouped, as_of)
    # the cohort total (= top customers + all_other), forecast too and then reconciled bottom-up
    total = (
        grouped.group_by("quarter_start")
        .agg(pl.col("units").sum().round(0), pl.col("revenue").sum().round(2))
        .select(series_id=pl.lit(TOTAL), quarter_start="quarter_start", units="units", revenue="revenue")
    )
    return pl.concat([grouped, total]).sort("series_id", "quarter_start")


def fill_gaps(series: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    """Every quarter from each series' first quarter to `as_of`, missing quarters as zero
    units and revenue (columns series_id, quarter_start, units, revenue)."""
    if series.is_empty():
        return series
    first = series.group_by("series_id").agg(first=pl.col("quarter_start").min())
    grid = (
        first.with_columns(quarter_start=pl.date_ranges(pl.col("first"), pl.lit(as_of), interval="3mo", closed="both"))
        .explode("quarter_start")
        .drop("first")
    )
    return (
        grid.join(series, on=["series_id", "quarter_start"], how="left")
        .with_columns(pl.col("units").fill_null(0.0), pl.col("revenue").fill_null(0.0))
        .select(series.columns)
        .sort("series_id", "quarter_start")
    )


def to_long(series: pl.DataFrame) -> pl.DataFrame:
    """unique_id (series::metric), ds, y — the engine's input format."""
    frames = [
        series.select(
            unique_id=pl.col("series_id") + pl.lit(f"{SEPARATOR}{metric}"),
            ds=pl.col("quarter_start"),
            y=pl.col(metric).cast(pl.Float64),
        )
        for metric in METRICS
    ]
    return pl.concat(frames).drop_nulls("y").sort("unique_id", "ds")


def split_unique_id(frame: pl.DataFrame) -> pl.DataFrame:
    parts = frame["unique_id"].str.split_exact(SEPARATOR, 1)
    return frame.with_columns(series_id=parts.struct.field("field_0"), metric=parts.struct.field("field_1"))


def actuals_at(cohort: Cohort, history: pl.DataFrame, quarter: dt.date) -> dict[tuple[str, str], float]:
    """{(series_id, metric): value} in `quarter` for every series the cohort publishes,
    including the derived ones (the top-customer cohort's `all_other` and `total`), which
    the history query alone does not return."""
    series = series_as_of(cohort, history, quarter).filter(pl.col("quarter_start") == quarter)
    return {
        (row["series_id"], metric): row[metric]
        for row in series.iter_rows(named=True)
        for metric in METRICS
        if row[metric] is not None
    }
