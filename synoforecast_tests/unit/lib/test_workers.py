"""Worker processes: jobs run in another process, errors and deaths are reported, and the
fits split over two processes are the fits made in one."""

from __future__ import annotations

import os

import numpy as np
import pytest

from synoforecast.lib import workers
from synoforecast.lib.forecasting import rolling
from synoforecast.lib.forecasting.cohort_forecast import prefetch_cohort
from synoforecast.lib.forecasting.rolling import OneStepPredictions, balanced_parts
from synoforecast_tests.unit.lib.forecasting.test_rolling import OVERALL, QUARTERS, tier_history


def pid_and(value):
    return os.getpid(), value


def fail_on_bad(message):
    if "bad" in message:
        raise ValueError(message)
    return message


def exit_with(code):
    if code:
        os._exit(code)  # a worker killed mid-job (out of memory, a signal)
    return code


def test_the_jobs_but_the_last_run_in_workers_and_come_back_in_order():
    answers = workers.run_split(pid_and, [("a",), ("b",), ("c",)])
    assert [value for _, value in answers] == ["a", "b", "c"]
    pids = [pid for pid, _ in answers]
    assert pids[-1] == os.getpid() and len(set(pids)) == 3
    again = workers.run_split(pid_and, [("d",), ("e",)])
    assert again[0][0] == pids[0]  # the same worker serves the next call


def test_a_failing_job_names_the_error_and_a_dead_worker_is_replaced():
    with pytest.raises(workers.WorkerError, match="ValueError: bad sheet"):
        workers.run_split(fail_on_bad, [("bad sheet",), ("fine",)])
    [worker] = workers.shared_workers(1)
    with pytest.raises(workers.WorkerError, match=r"died \(exit 3\)"):
        workers.run_split(exit_with, [(3,), (0,)])
    pid, value = workers.run_split(pid_and, [("y",), ("z",)])[0]
    assert value == "y" and pid != worker.proc.pid  # a new worker


def test_parts_are_balanced_by_length_and_cover_every_prefix():
    prefixes = {f"p{i}": (np.arange(n), np.ones(n)) for i, n in enumerate([24, 20, 12, 8, 8, 4, 3])}
    parts = balanced_parts(prefixes, 2)
    assert sorted(k for part in parts for k in part) == sorted(prefixes)
    loads = [sum(len(v[1]) for v in part.values()) for part in parts]
    assert abs(loads[0] - loads[1]) <= 4
    assert balanced_parts(dict(list(prefixes.items())[:1]), 2) == [dict(list(prefixes.items())[:1])]


def test_fits_made_on_two_processes_equal_the_fits_made_on_one(monkeypatch):
    history = tier_history()
    alone = OneStepPredictions(n_jobs=1)
    prefetch_cohort(OVERALL, history, QUARTERS[8:], alone, season_length=4)
    monkeypatch.setattr(rolling, "PARALLEL_MIN_FITS", 2)
    calls = []
    real = workers.run_split
    monkeypatch.setattr(
        workers, "run_split", lambda fn, jobs, preload=(): calls.append(len(jobs)) or real(fn, jobs, preload)
    )
    split = OneStepPredictions(n_jobs=2)
    prefetch_cohort(OVERALL, history, QUARTERS[8:], split, season_length=4)
    assert calls and set(calls) == {2}  # every model's fits went to a worker and this process
    assert split.values.keys() == alone.values.keys() and split.fits == alone.fits
    a = np.array([alone.values[k] for k in alone.values])
    b = np.array([split.values[k] for k in alone.values])
    np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-9)


def test_quarters_forecast_on_two_processes_are_the_rows_of_one():
    from synoforecast.lib.forecasting.cohort_forecast import forecast_quarters

    history, as_of = tier_history(), QUARTERS[6:]
    store = OneStepPredictions()
    prefetch_cohort(OVERALL, history, as_of, store, season_length=4)
    alone = forecast_quarters(OVERALL, history, as_of, "run", 4, one_step=store)
    split = forecast_quarters(OVERALL, history, as_of, "run", 4, one_step=store, n_jobs=2)
    assert list(split) == as_of
    for q in as_of:
        assert split[q][0].equals(alone[q][0]), q  # rows, to the last bit
        assert split[q][1].equals(alone[q][1])
    assert store.fits == len(store.values)  # the worker looked its fits up; nothing was refitted here


def test_a_missing_total_in_a_worker_is_the_same_refusal():
    import polars as pl

    from synoforecast.lib.forecasting.cohort_forecast import TotalNotPublished, forecast_quarters
    from synoforecast.lib.forecasting.cohorts import COHORTS_BY_NAME

    regions = tier_history().filter(pl.col("series_id") != "total")  # three "regions" onto the SVR-RM total
    with pytest.raises(TotalNotPublished, match="no published svr_rm_overall"):
        forecast_quarters(COHORTS_BY_NAME["regional"], regions, QUARTERS[6:12], "run", 4, totals={}, n_jobs=2)
