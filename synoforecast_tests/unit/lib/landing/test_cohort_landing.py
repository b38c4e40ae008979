"""A cohort's landing once its quarter is known: known parts stay put, coverage reads 100%."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import polars as pl
import pytest

from synoforecast.lib.forecasting.cohort_forecast import PUBLISHED_DECIMALS
from synoforecast.lib.forecasting.cohorts import ALL_C2, COHORTS_BY_NAME, TOTAL
from synoforecast.lib.forecasting.metrics import coverage
from synoforecast.lib.landing import model as L
from synoforecast.lib.landing.cohorts import cohort_inputs, land_cohort
from synoforecast.lib.quarters import add_quarters

QUARTERS = [add_quarters(dt.date(2021, 1, 1), i) for i in range(13)]  # 12 complete, the last one running
COMPLETE, RUNNING = QUARTERS[:-1], QUARTERS[-1]
LAST_DAY = add_quarters(RUNNING, 1) - dt.timedelta(days=1)
NO_HISTORY = pl.DataFrame(schema={"series_id": pl.String, "quarter_start": pl.Date})


def daily(sizes: dict[str, float], seed: int) -> pl.DataFrame:
    """Daily B2B-like flows per series: whole units, revenue in cents (as staging stores them:
    their float sums are a hair off the cents, like the warehouse's)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, size in sizes.items():
        for k, q in enumerate(QUARTERS):
            cal = L.QuarterCalendar.of(q)
            weekday = (np.arange(cal.days) + q.weekday()) % 7
            w = np.where(weekday >= 5, 0.1, 1.0) * rng.lognormal(0, 0.3, cal.days)
            units = np.round(size * (1 + 0.03 * k) * [0.9, 1, 0.95, 1.25][k % 4] * w / w.sum() * 90)
            rows += [
                (s, q + dt.timedelta(days=i), float(u), round(float(u) * 1234.57 + 0.01 * i, 2))
                for i, u in enumerate(units)
                if u > 0
            ]
    return pl.DataFrame(rows, schema=["series_id", "day", "units", "revenue"], orient="row")


def monthly(services: dict[str, dt.date], seed: int) -> pl.DataFrame:
    """C2 rows: one per service and month (dated on its first day), seats and MRR in cents."""
    rng = np.random.default_rng(seed)
    months = [dt.date(q.year, q.month + m, 1) for q in QUARTERS for m in range(3)]
    return pl.DataFrame(
        [
            (s, m, float(rng.integers(50, 500)), round(float(rng.uniform(1e3, 9e3)), 2))
            for s, launch in services.items()
            for m in months
            if m >= launch
        ],
        schema=["series_id", "day", "units", "revenue"],
        orient="row",
    )


def with_parent(parts: pl.DataFrame, parent: str, extra: pl.DataFrame) -> pl.DataFrame:
    """The parent's own rows as the daily query summed them: every line, `extra` included."""
    rows = (
        pl.concat([parts, extra])
        .group_by("day")
        .agg(pl.col("units", "revenue").sum())
        .select(series_id=pl.lit(parent), day="day", units="units", revenue="revenue")
    )
    return pl.concat([parts, rows])


def forecasts(frame: pl.DataFrame, cohort, published: dict[str, list[dt.date]], seed: int) -> pl.DataFrame:
    """Each part's quarter ~12% off, in the quarters it has a forecast for; the parent as the
    sum of its parts' forecasts (bottom-up, as published)."""
    rng = np.random.default_rng(seed)
    paths = L.quarter_paths(frame, QUARTERS, cohort.stock_metrics)
    rows = [
        (s, m, q, float(round(paths[(s, m, q)][-1] * rng.lognormal(0, 0.12), 4)))
        for s, quarters in published.items()
        for q in quarters
        for m in ("units", "revenue")
        if (s, m, q) in paths
    ]
    parts = pl.DataFrame(rows, schema=["series_id", "metric", "target_quarter", "yhat"], orient="row")
    if cohort.parent is None:
        return parts
    parent = (
        parts.group_by("metric", "target_quarter")
        .agg(pl.col("yhat").sum())
        .select(series_id=pl.lit(cohort.parent), metric="metric", target_quarter="target_quarter", yhat="yhat")
    )
    return pl.concat([parts, parent])


def landed(cohort, frame: pl.DataFrame, published: dict, cutoff: dt.date):
    parts = frame.filter(pl.col("series_id") != (cohort.parent or ""))
    inputs = cohort_inputs(cohort, frame, NO_HISTORY, forecasts(parts, cohort, published, seed=7), COMPLETE, RUNNING)
    return land_cohort(cohort, inputs, RUNNING, cutoff)


def assert_known_parts_unmoved(rows: pl.DataFrame, parent: str, actual: str) -> None:
    """Parts published as their actuals, the parent as their exact (decimal) sum."""
    parts = rows.filter(pl.col("series_id") != parent)
    assert parts.height and parts["yhat"].to_list() == parts[actual].round(PUBLISHED_DECIMALS).to_list()
    for (quarter, week, metric), g in parts.group_by("quarter_start", "week", "metric"):
        top = rows.filter(
            (pl.col("series_id") == parent)
            & (pl.col("quarter_start") == quarter)
            & (pl.col("week") == week)
            & (pl.col("metric") == metric)
        )["yhat"].item()
        assert Decimal(repr(top)) == sum(Decimal(repr(v)) for v in g["yhat"]), (quarter, week, metric)


def test_a_fully_known_quarter_scores_zero_wide_bands_as_covered():
    cohort = COHORTS_BY_NAME["consumer_trend"]
    frame = daily({TOTAL: 3.0}, seed=3)
    result = landed(cohort, frame, {TOTAL: QUARTERS}, LAST_DAY)
    last = result.replays.filter(pl.col("week") == L.WEEKS)
    assert last.height == 2 * 8 and (last["yhat_lo_80"] == last["yhat_hi_80"]).all()  # the quarter is known
    assert (last["yhat"] == last["actual"].round(PUBLISHED_DECIMALS)).all()
    assert (last["actual"] != last["actual"].round(PUBLISHED_DECIMALS)).any()  # float sums of cents
    scores = result.evaluation.filter(pl.col("week_of_quarter") == L.WEEKS)
    assert scores["smape_landing"].to_list() == pytest.approx([0.0, 0.0], abs=1e-9)
    assert scores["coverage_80"].to_list() == [100.0, 100.0] == scores["coverage_95"].to_list()
    for (metric, week), g in result.replays.filter(pl.col("week") < L.WEEKS).group_by("metric", "week"):
        assert (g["yhat_hi_80"] - g["yhat_lo_80"]).min() > 1  # real bands: scored as the unrounded actual is
        row = result.evaluation.filter((pl.col("metric") == metric) & (pl.col("week_of_quarter") == week))
        assert row["coverage_80"].item() == coverage(g["actual"], g["yhat_lo_80"], g["yhat_hi_80"])


def test_svr_rm_parts_land_on_their_actuals_when_the_total_holds_an_unknown_tier():
    cohort = COHORTS_BY_NAME["svr_rm_overall"]
    tiers = daily({"T1": 1.0, "T2": 2.0, "T3": 0.5}, seed=1)
    unknown = daily({"Unknown": 0.2}, seed=2)  # lines of no tier: in the total's rows, in no part
    result = landed(cohort, with_parent(tiers, TOTAL, unknown), {t: QUARTERS for t in ("T1", "T2", "T3")}, LAST_DAY)
    assert_known_parts_unmoved(result.rows, TOTAL, "qtd_actual")
    assert_known_parts_unmoved(result.replays.filter(pl.col("week") == L.WEEKS), TOTAL, "actual")
    scores = result.evaluation.filter(pl.col("week_of_quarter") == L.WEEKS)
    assert (
        scores["smape_landing"].to_list() == pytest.approx([0.0] * 4, abs=1e-9)
        and (scores["coverage_80"] == 100.0).all()
    )


@pytest.mark.parametrize("week", [9, 11])
def test_c2_services_land_on_their_actuals_once_the_third_month_is_in(week):
    cohort = COHORTS_BY_NAME["c2_scorecard"]
    launched = {
        "C2 Backup": QUARTERS[0],
        "C2 Storage": QUARTERS[0],
        "C2 Transfer": QUARTERS[6] + dt.timedelta(days=31),  # forecast from the quarter after
        "C2 Password": RUNNING + dt.timedelta(days=31),
    }  # launched this quarter: no forecast yet
    services = monthly(launched, seed=4)
    published = {"C2 Backup": QUARTERS, "C2 Storage": QUARTERS, "C2 Transfer": QUARTERS[7:]}
    cutoff = RUNNING + dt.timedelta(days=L.QuarterCalendar.of(RUNNING).replay_indexes()[week - 1])
    result = landed(cohort, with_parent(services, ALL_C2, services.head(0)), published, cutoff)
    assert result.rows.filter(pl.col("series_id") == "C2 Password").is_empty()
    assert_known_parts_unmoved(result.rows, ALL_C2, "qtd_actual")
    known = result.replays.filter(pl.col("week") >= 9)
    assert known.filter(pl.col("quarter_start") == QUARTERS[6]).height  # the launch quarter is replayed
    assert_known_parts_unmoved(known, ALL_C2, "actual")
    scores = result.evaluation.filter(pl.col("week_of_quarter") >= 9)
    assert (scores["smape_landing"] < 1e-9).all() and (scores["coverage_80"] == 100.0).all()
