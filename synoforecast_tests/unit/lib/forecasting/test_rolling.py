"""The rolling pass: fits shared between as-of quarters give exactly the per-partition results."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from synoforecast.lib.forecasting.cohort_forecast import forecast_cohort, prefetch_cohort
from synoforecast.lib.forecasting.cohorts import COHORTS_BY_NAME
from synoforecast.lib.forecasting.rolling import OneStepPredictions, model_key, prefix_key
from synoforecast.lib.forecasting.selection import candidate_specs

TOP = COHORTS_BY_NAME["svr_rm_top_customers"]
OVERALL = COHORTS_BY_NAME["svr_rm_overall"]
QUARTERS = [dt.date(2019 + i // 4, 1 + 3 * (i % 4), 1) for i in range(22)]


def customer_history() -> pl.DataFrame:
    """Customers who enter late, skip quarters and trade places in the top set: the top set
    (and so `all_other`) differs between as-of quarters, the case a shared fit must not blur."""
    rng = np.random.default_rng(3)
    rows = []
    for i, q in enumerate(QUARTERS):
        season = [0.9, 1.0, 0.95, 1.3][i % 4]
        bases = {"C1": 60.0, "C2": 25.0 + 2.0 * i, "C3": 40.0 - 1.2 * i, "C4": 5.0, "C5": 12.0}
        for c, base in bases.items():
            if c == "C5" and i < 9:  # a new customer
                continue
            if c == "C4" and i % 3 == 1:  # a sparse one: no row at all in some quarters
                continue
            u = max(0.0, round(base * season + rng.normal(0, base * 0.1)))
            rows.append((c, q, u, round(u * 2150.37, 2)))
    frame = pl.DataFrame(rows, schema=["series_id", "quarter_start", "units", "revenue"], orient="row")
    ranked = frame.with_columns(rank=pl.col("units").rank("ordinal", descending=True).over("quarter_start"))
    return ranked.with_columns(is_top_customer=pl.col("rank") <= 2).drop("rank")


def tier_history() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i, q in enumerate(QUARTERS):
        season = [0.9, 1.0, 0.95, 1.25][i % 4]
        parts = {
            t: round(b * season * (1 + 0.02 * i) + rng.normal(0, b * 0.04))
            for t, b in {"T1": 300.0, "T2": 120.0, "T3": 40.0}.items()
        }
        rows += [(t, q, float(u), float(u) * 1999.0) for t, u in parts.items()]
        rows.append(("total", q, float(sum(parts.values())), float(sum(parts.values())) * 1999.0))
    return pl.DataFrame(rows, schema=["series_id", "quarter_start", "units", "revenue"], orient="row")


@pytest.mark.parametrize(
    "cohort,history", [(TOP, customer_history()), (OVERALL, tier_history())], ids=["top_customers", "tiers"]
)
def test_one_rolling_pass_publishes_exactly_the_per_partition_rows(cohort, history):
    as_of = QUARTERS[4:]
    store = OneStepPredictions()
    prefetch_cohort(cohort, history, as_of, store, season_length=4)
    made = store.fits
    # the customers add up to svr_rm_overall's total (top-down): any published total will do here
    totals = pl.DataFrame({"metric": ["units", "revenue"], "total": [1000.0, 2_000_000.0]})
    totals = totals if cohort.top_down_to else None
    for q in as_of:
        baseline, _, _ = forecast_cohort(cohort, history, q, "run", 4, totals=totals)
        rolled, _, _ = forecast_cohort(cohort, history, q, "run", 4, totals=totals, one_step=store)
        if totals is not None:
            sums = rolled.filter(pl.col("series_id") != "total").group_by("metric").agg(pl.col("yhat").sum())
            assert dict(sums.iter_rows()) == {"units": 1000.0, "revenue": 2_000_000.0}
            assert dict(rolled.filter(pl.col("series_id") == "total").select("metric", "yhat").iter_rows()) == {
                "units": 1000.0,
                "revenue": 2_000_000.0,
            }
        assert rolled.columns == baseline.columns
        assert rolled.sort("series_id", "metric").equals(baseline.sort("series_id", "metric")), q
    assert store.fits == made  # the forecasts only looked fits up
    assert store.reused > made  # neighbouring quarters share their origins


def test_fits_are_made_once_and_a_changed_value_refits_only_the_origins_after_it():
    history = tier_history()
    as_of = QUARTERS[10:]
    store = OneStepPredictions()
    prefetch_cohort(OVERALL, history, as_of, store, season_length=4)
    first = store.fits
    prefetch_cohort(OVERALL, history, as_of, store, season_length=4)
    assert store.fits == first  # nothing refitted

    # an export that revises T3 in the last as-of quarter: only prefixes that hold it are new
    revised = history.with_columns(
        units=pl.when((pl.col("series_id") == "T3") & (pl.col("quarter_start") == as_of[-1]))
        .then(pl.col("units") + 7)
        .otherwise(pl.col("units"))
    )
    prefetch_cohort(OVERALL, revised, as_of, store, season_length=4)
    full_band_models = len(candidate_specs("full", 4, False, "ZZZ"))
    assert store.fits - first == full_band_models  # one new prefix (T3 units up to that quarter) x its candidates


def test_the_key_is_the_content_and_the_model_configuration():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert prefix_key(y) == prefix_key(y.copy())
    assert prefix_key(y) != prefix_key(np.array([1.0, 2.0, 3.0, 4.000001]))
    assert prefix_key(y) != prefix_key(y[:3])
    ets = candidate_specs("full", 4, False, "ZZZ")[2]
    assert model_key(ets) != model_key((ets[0], {**ets[1], "damped": True}))
    assert model_key(ets) != model_key((ets[0], {**ets[1], "season_length": 12}))
    assert "statsforecast-" in model_key(ets)


def test_a_persistent_store_is_asked_first_and_given_what_was_fitted():
    history = tier_history()
    saved: dict = {}
    asked: list = []
    first = OneStepPredictions(save=saved.update)
    prefetch_cohort(OVERALL, history, QUARTERS[12:], first, season_length=4)
    assert len(saved) == first.fits > 0

    def load(keys):
        asked.extend(keys)
        return {k: saved[k] for k in keys if k in saved}

    second = OneStepPredictions(load=load, save=saved.update)
    prefetch_cohort(OVERALL, history, QUARTERS[12:], second, season_length=4)
    assert second.fits == 0 and second.loaded == len(saved) == len(set(asked))
    rows_a, _, _ = forecast_cohort(OVERALL, history, QUARTERS[-1], "r", 4, one_step=first)
    rows_b, _, _ = forecast_cohort(OVERALL, history, QUARTERS[-1], "r", 4, one_step=second)
    assert rows_a.equals(rows_b)


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        yield cluster


def test_the_rolling_pass_on_a_dask_cluster_gives_the_local_fits_and_forecasts(dask_cluster, monkeypatch):
    from synoforecast.lib.forecasting import rolling

    monkeypatch.setattr(rolling, "DASK_FITS_PER_TASK", 20)  # several tasks per model on a small cohort
    history = tier_history()
    as_of = QUARTERS[8:]
    local = OneStepPredictions(n_jobs=2)
    prefetch_cohort(OVERALL, history, as_of, local, season_length=4)
    remote = OneStepPredictions(dask_scheduler=dask_cluster.scheduler_address)
    prefetch_cohort(OVERALL, history, as_of, remote, season_length=4)
    assert remote.fits == local.fits > 500 and set(remote.values) == set(local.values)
    ran = remote._dask.run(lambda dask_worker: len(dask_worker.state.log))
    assert len(ran) == 2 and all(n > 0 for n in ran.values())  # both workers fitted
    keys = sorted(local.values)
    a = np.array([local.values[k] for k in keys])
    b = np.array([remote.values[k] for k in keys])
    differ = [k for k, x, y in zip(keys, a, b) if not np.isclose(x, y, rtol=1e-9, atol=0, equal_nan=True)]
    assert not differ, f"{len(differ)} fits differ beyond rel 1e-9, e.g. {differ[:3]}"
    for q in as_of[-4:]:
        rows_local, _, _ = forecast_cohort(OVERALL, history, q, "r", 4, one_step=local)
        rows_dask, _, _ = forecast_cohort(OVERALL, history, q, "r", 4, one_step=remote)
        assert rows_dask.columns == rows_local.columns
        x, y = (r.sort("series_id", "metric") for r in (rows_local, rows_dask))
        assert x.select(pl.col(pl.String)).equals(y.select(pl.col(pl.String)))  # same series, models, labels
        for col in [c for c in x.columns if x[c].dtype == pl.Float64]:
            np.testing.assert_allclose(y[col].to_numpy(), x[col].to_numpy(), rtol=1e-9, atol=0, err_msg=f"{q} {col}")


def test_an_unreachable_scheduler_is_a_one_line_error_naming_its_address(monkeypatch):
    import socket

    from synoforecast.lib.forecasting import rolling

    monkeypatch.setattr(rolling, "DASK_CONNECT_TIMEOUT", "2s")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(rolling.DaskUnreachable) as caught:
        OneStepPredictions(dask_scheduler=address)
    message = str(caught.value)
    assert message.startswith(f"dask scheduler {address} is unreachable: ") and "\n" not in message, message
