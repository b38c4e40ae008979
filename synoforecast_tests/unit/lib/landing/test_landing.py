"""The landing engine on synthetic daily sales whose truth is known."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from synoforecast.lib.landing import model as L
from synoforecast.lib.quarters import add_quarters

QUARTERS = [add_quarters(dt.date(2020, 1, 1), i) for i in range(20)]
SERIES = {"T1": 1.0, "T2": 2.0, "T3": 0.5}


def daily_sales(seed: int = 1, quarters=QUARTERS) -> pl.DataFrame:
    """Flows with weekends (10% of a weekday), a quarter-end push (+30% in the last 30 days),
    a season, growth and daily noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, size in SERIES.items():
        for k, q in enumerate(quarters):
            cal = L.QuarterCalendar.of(q)
            total = 100 * size * (1 + 0.03 * k) * [0.9, 1, 0.95, 1.25][k % 4] * rng.lognormal(0, 0.1)
            days = np.arange(cal.days)
            weekday = (days + q.weekday()) % 7
            w = (
                np.where(weekday >= 5, 0.1, 1.0)
                * np.where(days >= cal.days - 30, 1.3, 1.0)
                * rng.lognormal(0, 0.3, cal.days)
            )
            per_day = total * w / w.sum()
            rows += [(s, q + dt.timedelta(days=int(i)), float(per_day[i]), float(per_day[i] * 10)) for i in days]
    return pl.DataFrame(rows, schema=["series_id", "day", "units", "revenue"], orient="row")


def quarter_forecasts(seed: int = 2) -> dict:
    """The quarterly forecasts: each quarter's true total (of the default sales) off by ~12%."""
    rng = np.random.default_rng(seed)
    paths = L.quarter_paths(daily_sales(), QUARTERS)
    return {
        (s, m, q): paths[(s, m, q)][-1] * rng.lognormal(0, 0.12)
        for s in SERIES
        for m in ("units", "revenue")
        for q in QUARTERS
    }


def inputs(daily: pl.DataFrame, complete=QUARTERS[:-1]) -> L.CohortInputs:
    paths = L.quarter_paths(daily, QUARTERS)
    forecasts = quarter_forecasts()
    return L.CohortInputs(
        paths=paths,
        complete=list(complete),
        forecasts=forecasts,
        series=[(s, m) for s in SERIES for m in ("units", "revenue")],
        parts=list(SERIES),
    )


def test_the_calendar_counts_selling_days_and_weekly_cutoffs():
    q3 = L.QuarterCalendar.of(dt.date(2025, 7, 1))  # Tue 1 Jul .. Tue 30 Sep: 92 days, 66 weekdays
    assert q3.days == 92 and int(q3.selling_cum[-1]) == 66 == L.weekday_count(dt.date(2025, 7, 1), dt.date(2025, 9, 30))
    cutoffs = q3.replay_indexes()
    assert len(cutoffs) == L.WEEKS and cutoffs[0] == 6 and cutoffs[-1] == 91
    assert [q3.week(i) for i in cutoffs] == list(range(1, L.WEEKS + 1))
    assert q3.selling_share(4) == pytest.approx(4 / 66)  # Tue..Sat: four weekdays
    assert q3.index_at_selling_share(q3.selling_share(45)) <= 45


def test_paths_sum_flows_and_carry_stocks_forward():
    q = dt.date(2025, 1, 1)
    daily = pl.DataFrame(
        {
            "series_id": ["A", "A", "A"],
            "day": [dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 3, 1)],
            "units": [10.0, 12.0, 15.0],
            "revenue": [100.0, 120.0, 150.0],
        }
    )
    paths = L.quarter_paths(daily, [q], stock_metrics=("units",))
    seats, mrr = paths[("A", "units", q)], paths[("A", "revenue", q)]
    assert seats[0] == 10 and seats[31] == 12 and seats[-1] == 15  # the latest month's seats
    assert mrr[30] == 100 and mrr[31] == 220 and mrr[-1] == 370  # revenue summed to date


def test_the_landing_beats_the_forecast_and_the_naive_share_as_the_quarter_fills():
    replayed = L.cross_fitted(L.replays(inputs(daily_sales())))
    scored = replayed.with_columns(
        landing=pl.Series(L.smape_terms(replayed["actual"].to_numpy(), replayed["yhat"].to_numpy())),
        start=pl.Series(L.smape_terms(replayed["actual"].to_numpy(), replayed["forecast_start"].to_numpy())),
        naive=pl.Series(L.smape_terms(replayed["actual"].to_numpy(), replayed["naive_extrapolated"].to_numpy())),
    )
    by_week = scored.group_by("week").agg(pl.col("landing", "start", "naive").mean()).sort("week")
    mid, late = (
        by_week.filter(pl.col("week") == 7).row(0, named=True),
        by_week.filter(pl.col("week") == 11).row(0, named=True),
    )
    assert mid["landing"] <= 0.5 * mid["start"] and late["landing"] <= 0.25 * late["start"]
    assert (by_week["landing"] <= by_week["start"] + 1e-9).all()
    assert (by_week["landing"] <= by_week["naive"] + 1e-9).all()


def test_intervals_are_nested_honest_and_narrow_as_the_quarter_fills():
    replayed = L.scored(L.cross_fitted(L.replays(inputs(daily_sales()))))
    honest = L.with_intervals(replayed, replayed, leave_quarter_out=True)
    covered = ((honest["actual"] >= honest["yhat_lo_80"]) & (honest["actual"] <= honest["yhat_hi_80"])).mean()
    assert 0.7 <= covered <= 0.9
    assert (honest["yhat_hi_95"] > honest["yhat_hi_80"]).all() and (honest["yhat_lo_95"] < honest["yhat_lo_80"]).all()
    width = (
        honest.with_columns(rel=(pl.col("yhat_hi_80") - pl.col("yhat_lo_80")) / pl.col("actual"))
        .group_by("week")
        .agg(pl.col("rel").median())
        .sort("week")["rel"]
        .to_list()
    )
    assert width[-2] < width[1] / 2


def test_a_replay_sees_only_rows_dated_up_to_its_cutoff():
    base = daily_sales()
    quarter = QUARTERS[10]
    cutoff_index = L.QuarterCalendar.of(quarter).replay_indexes()[5]  # week 6
    cutoff = quarter + dt.timedelta(days=cutoff_index)
    later = base.with_columns(
        units=pl.when((pl.col("day") > cutoff) & (pl.col("day") < add_quarters(quarter, 1)))
        .then(pl.col("units") * 3)
        .otherwise(pl.col("units"))
    )
    a = L.replays(inputs(base)).filter((pl.col("quarter_start") == quarter) & (pl.col("week") == 6))
    b = L.replays(inputs(later)).filter((pl.col("quarter_start") == quarter) & (pl.col("week") == 6))
    same = ["series_id", "metric", "qtd_actual", "profile_share", "extrapolated", "forecast_start"]
    assert a.select(same).equals(b.select(same))
    assert not a["actual"].equals(b["actual"])  # only how the quarter landed differs
    # and nothing of later quarters reaches an earlier quarter's profile
    shifted = base.with_columns(
        units=pl.when(pl.col("day") >= QUARTERS[12]).then(pl.col("units") * 5).otherwise(pl.col("units"))
    )
    c = L.replays(inputs(shifted)).filter(pl.col("quarter_start") == quarter)
    assert c.select(same).equals(L.replays(inputs(base)).filter(pl.col("quarter_start") == quarter).select(same))


def test_a_series_without_a_profile_lands_on_its_forecast():
    daily = daily_sales()
    new = pl.DataFrame(
        {"series_id": ["NEW"], "day": [QUARTERS[-1] + dt.timedelta(days=3)], "units": [4.0], "revenue": [40.0]}
    )
    inp = inputs(pl.concat([daily, new]))
    inp.series.append(("NEW", "units"))
    inp.forecasts[("NEW", "units", QUARTERS[-1])] = 25.0
    inp.parts = ["NEW"]  # no pooled profile either: the new series is the whole pool
    scored = L.cross_fitted(L.replays(inp))
    landed = L.land(inp, QUARTERS[-1], QUARTERS[-1] + dt.timedelta(days=20), scored)
    row = landed.filter(pl.col("series_id") == "NEW").row(0, named=True)
    assert row["qtd_actual"] == 4.0 and np.isnan(row["extrapolated"]) and row["yhat"] == 25.0


def test_on_the_quarters_last_day_the_landing_is_what_is_there_whatever_the_weights():
    """No replays: every weight falls to the forecast, which is off by ~12%; on the last day
    of the quarter the landing is nonetheless the quarter-to-date, the quarter itself."""
    inp = inputs(daily_sales())
    last_day = add_quarters(QUARTERS[-1], 1) - dt.timedelta(days=1)
    landed = L.land(inp, QUARTERS[-1], last_day, pl.DataFrame(schema=L.REPLAY_SCHEMA))
    assert landed["elapsed_share"].to_list() == [1.0] * landed.height
    assert landed["yhat"].to_list() == landed["qtd_actual"].to_list()
    assert (landed["forecast_start"] != landed["qtd_actual"]).all()
    earlier = L.land(inp, QUARTERS[-1], last_day - dt.timedelta(days=1), pl.DataFrame(schema=L.REPLAY_SCHEMA))
    assert earlier["yhat"].to_list() == earlier["forecast_start"].to_list()
