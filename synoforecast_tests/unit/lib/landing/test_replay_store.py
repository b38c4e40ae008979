"""The landing's replays kept by content hash (lib/landing/replay_store.py, cohort_landing.replay_key)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import polars as pl
import pytest

from synoforecast.lib.forecasting.cohorts import COHORTS_BY_NAME
from synoforecast.lib.landing.cohorts import land_cohort, replay_cohort, replay_key
from synoforecast.lib.landing.replay_store import load_replays, save_replays
from synoforecast_tests.unit.lib.landing.test_landing import QUARTERS, daily_sales, inputs

COHORT = COHORTS_BY_NAME["svr_rm_overall"]
RUNNING, CUTOFF = QUARTERS[-1], QUARTERS[-1] + dt.timedelta(days=40)


@pytest.fixture(scope="module")
def base():
    return inputs(daily_sales())


def _with_path(inp, key, change):
    paths = dict(inp.paths)
    paths[key] = change(paths[key].copy())
    return dataclasses.replace(inp, paths=paths)


def test_the_key_ignores_the_running_quarter_and_follows_every_complete_quarters_value(base):
    key = replay_key(COHORT, base)
    assert key == replay_key(COHORT, inputs(daily_sales()))  # the same content, computed again

    def bump_last_day(a):
        a[-1] += 1.0
        return a

    assert replay_key(COHORT, _with_path(base, ("T1", "units", RUNNING), bump_last_day)) == key  # this week's sales
    assert replay_key(COHORT, _with_path(base, ("T2", "revenue", QUARTERS[3]), bump_last_day)) != key  # a revision
    forecasts = dict(base.forecasts)
    forecasts[("T1", "units", QUARTERS[5])] += 1.0
    assert replay_key(COHORT, dataclasses.replace(base, forecasts=forecasts)) != key
    assert replay_key(COHORTS_BY_NAME["regional"], base) != key
    totals = pl.DataFrame({"quarter_start": [QUARTERS[5]], "week": [3], "metric": ["units"], "total": [10.0]})
    assert replay_key(COHORT, base, totals) != key
    assert replay_key(COHORT, base, totals.with_columns(total=pl.lit(10.5))) != replay_key(COHORT, base, totals)


def test_a_landing_from_stored_replays_equals_one_that_replays_everything(base, tmp_path):
    key = replay_key(COHORT, base)
    assert load_replays(tmp_path, COHORT.name, key) is None
    save_replays(tmp_path, COHORT.name, key, replay_cohort(COHORT, base))
    stored = load_replays(tmp_path, COHORT.name, key)
    assert stored is not None
    fresh = land_cohort(COHORT, base, RUNNING, CUTOFF)
    reused = land_cohort(COHORT, base, RUNNING, CUTOFF, replayed=stored)
    assert fresh.rows.height > 0 and fresh.replays.height > 1000
    assert reused.rows.equals(fresh.rows, null_equal=True)
    assert reused.replays.equals(fresh.replays, null_equal=True)
    assert reused.evaluation.equals(fresh.evaluation, null_equal=True)


def test_the_store_keeps_the_newest_keys_and_recomputes_an_unreadable_entry(base, tmp_path):
    replayed = replay_cohort(COHORT, base)
    for i in range(6):
        save_replays(tmp_path, COHORT.name, f"k{i}", replayed, keep=3)
    assert sorted(p.name for p in (tmp_path / COHORT.name).iterdir()) == ["k3", "k4", "k5"]
    (tmp_path / COHORT.name / "k5" / "honest.parquet").write_bytes(b"not parquet")
    assert load_replays(tmp_path, COHORT.name, "k5") is None
    assert np.isfinite(load_replays(tmp_path, COHORT.name, "k4").reconciled["score"].to_numpy()).any()
