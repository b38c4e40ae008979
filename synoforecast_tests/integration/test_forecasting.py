"""Selection, reconciliation, evaluation and the analyst role against real statsforecast and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import psycopg
import pytest

from synoforecast.defs.forecast.assets import (
    FORECAST_TABLE,
    accuracy_failures,
    incoherent_groups,
    published_failures,
    published_totals,
    score_quarter,
)
from synoforecast.lib.forecasting.cohort_forecast import TotalNotPublished
from synoforecast.lib.forecasting.cohort_forecast import forecast_cohort as forecast_details
from synoforecast.lib.forecasting.cohorts import ALL_OTHER, COHORTS_BY_NAME, TOTAL
from synoforecast.lib.warehouse.connection import ensure_schema, replace_rows
from synoforecast_tests.conftest import fetch

OVERALL = COHORTS_BY_NAME["svr_rm_overall"]
TOP = COHORTS_BY_NAME["svr_rm_top_customers"]
REGIONAL = COHORTS_BY_NAME["regional"]
QUARTERS = [dt.date(2020 + i // 4, 1 + 3 * (i % 4), 1) for i in range(20)]


def tier_history(seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    tiers = {"T1": 300.0, "T2": 120.0, "T3": 40.0}
    for i, q in enumerate(QUARTERS):
        season = [0.9, 1.0, 0.95, 1.25][i % 4]
        parts = {t: round(base * season * (1 + 0.02 * i) + rng.normal(0, base * 0.04)) for t, base in tiers.items()}
        for t, u in parts.items():
            rows.append((t, q, float(u), float(u) * 1999.0))
        total = sum(parts.values())
        rows.append((TOTAL, q, float(total), float(total) * 1999.0))
    return pl.DataFrame(rows, schema=["series_id", "quarter_start", "units", "revenue"], orient="row")


def region_history(tiers: pl.DataFrame, seed: int = 1) -> pl.DataFrame:
    """The same SVR-RM sale-out split by region (shares drift, so regions do not move in step),
    plus an 'Unknown' region like the mart's; per quarter it adds up to the tier data's total."""
    rng = np.random.default_rng(seed)
    rows = []
    totals = tiers.filter(pl.col("series_id") == TOTAL).sort("quarter_start")
    for i, (q, units) in enumerate(totals.select("quarter_start", "units").iter_rows()):
        shares = np.array([0.42 - 0.004 * i, 0.31, 0.2 + 0.004 * i, 0.07]) * (1 + rng.normal(0, 0.03, 4))
        parts = np.floor(units * shares / shares.sum())
        parts[0] += units - parts.sum()
        for region, u in zip(("EMEA", "Americas", "APAC", "Unknown"), parts):
            rows.append((region, q, float(u), float(u) * 1999.0))
    return pl.DataFrame(rows, schema=["series_id", "quarter_start", "units", "revenue"], orient="row")


def customer_history() -> pl.DataFrame:
    rng = np.random.default_rng(5)
    rows = []
    for i, q in enumerate(QUARTERS):
        for c, base in (("C1", 50.0), ("C2", 30.0), ("C3", 8.0), ("C4", 3.0)):
            u = max(0.0, round(base * (1 + 0.03 * i) + rng.normal(0, base * 0.1)))
            rows.append((c, q, u, round(u * 2150.37, 2), c in ("C1", "C2")))
    return pl.DataFrame(
        rows, schema=["series_id", "quarter_start", "units", "revenue", "is_top_customer"], orient="row"
    )


@pytest.fixture(scope="module")
def warehouse(pg_server):
    from synoforecast_tests.conftest import new_database

    url = new_database(pg_server)
    ensure_schema(url)
    ensure_schema(url)  # idempotent: alter ... add column if not exists, views, role
    return url


def publish(url, cohort, history, as_of, run_id="it-run"):
    totals = published_totals(url, cohort, [as_of]).get(as_of)
    rows, choices, _ = forecast_details(cohort, history, as_of, run_id, 4, totals=totals)
    replace_rows(
        url, FORECAST_TABLE, rows, "cohort = %s and as_of_quarter = %s", (cohort.name, as_of), run_id, as_of.isoformat()
    )
    return rows, choices


def test_published_hierarchies_add_up_exactly_and_are_scored(warehouse):
    histories = {OVERALL.name: tier_history(), TOP.name: customer_history()}
    for as_of in QUARTERS[-4:-1]:  # a small rolling-origin backtest: 3 as-of quarters
        _rows, choices = publish(warehouse, OVERALL, histories[OVERALL.name], as_of)
        assert set(choices["band"]) == {"full"} and choices["windows"].min() >= 2
        publish(warehouse, TOP, histories[TOP.name], as_of)

    # totals equal the sum of their parts, exactly, in the published numbers
    mismatches = fetch(
        warehouse,
        """
        select f.cohort, f.as_of_quarter, f.metric, f.yhat::numeric, s.parts
          from forecast.forecasts f
          join (select cohort, as_of_quarter, metric, sum(yhat::numeric) parts from forecast.forecasts
                 where series_id <> 'total' group by 1, 2, 3) s using (cohort, as_of_quarter, metric)
         where f.series_id = 'total' and f.yhat::numeric <> s.parts""",
    )
    assert mismatches == []
    n_totals = fetch(warehouse, "select count(*) from forecast.forecasts where series_id = 'total'")[0][0]
    assert n_totals == 2 * 2 * 3  # two cohorts x two metrics x three as-of quarters
    series = {
        r[0]
        for r in fetch(
            warehouse, "select distinct series_id from forecast.forecasts where cohort = 'svr_rm_top_customers'"
        )
    }
    assert series == {"C1", "C2", ALL_OTHER, TOTAL}
    # bottom-up moved only svr_rm_overall's total; the customers are scaled onto that total (one
    # SVR-RM total), so their total is the overall's; the unreconciled points are kept
    moved = fetch(
        warehouse, "select series_id from forecast.forecasts where yhat <> yhat_base and cohort = 'svr_rm_overall'"
    )
    assert {r[0] for r in moved} <= {TOTAL}
    apart = fetch(
        warehouse,
        """select count(*) from forecast.forecasts c join forecast.forecasts o using (as_of_quarter, metric, series_id)
            where c.cohort = 'svr_rm_top_customers' and o.cohort = 'svr_rm_overall' and series_id = 'total'
              and c.yhat::numeric <> o.yhat::numeric""",
    )
    assert apart == [(0,)]
    # intervals nested around the point
    bad = fetch(
        warehouse,
        """select count(*) from forecast.forecasts where not (yhat_lo_95 <= yhat_lo_80
                 and yhat_lo_80 <= yhat and yhat <= yhat_hi_80 and yhat_hi_80 <= yhat_hi_95)""",
    )[0][0]
    assert bad == 0

    # evaluation: forecasts made at Q-1 scored against Q, with MASE, bias, coverage and the benchmark
    for q in QUARTERS[-3:]:
        scores = score_quarter(warehouse, q, "it-eval", histories)
        replace_rows(warehouse, "forecast.evaluation", scores, "quarter = %s", (q,), "it-eval", q.isoformat())
    got = fetch(
        warehouse,
        """select cohort, metric, level, count(*), avg(smape), avg(smape_snaive), avg(mase),
                                     avg(coverage_80), avg(coverage_95), avg(smape_base), avg(bias)
                                from forecast.evaluation group by 1, 2, 3 order by 1, 2, 3""",
    )
    # totals and their parts are scored apart: an average over both would count every unit twice
    assert {r[:3] for r in got} == {
        (c, m, lv) for c in (OVERALL.name, TOP.name) for m in ("units", "revenue") for lv in ("parts", "total")
    }
    for cohort, metric, _level, n, smape, snaive, mase, cov80, cov95, base, bias in got:
        assert n == 3 and 0 <= smape < 200 and snaive is not None and mase is not None, (cohort, metric)
        assert 0 <= cov80 <= cov95 <= 100 and base is not None and bias is not None
    overall_units = next(r for r in got if r[:3] == (OVERALL.name, "units", "total"))
    assert overall_units[4] < 10  # a smooth seasonal series; beating seasonal naive is measured on M3 (docs)

    scores = pl.DataFrame(
        {"cohort": ["x"], "quarter_label": ["2024-Q1"], "metric": ["units"], "smape": [12.0], "smape_snaive": [10.0]}
    )
    assert accuracy_failures(scores, max_smape=30) == ["x/units 2024-Q1: sMAPE 12.0 worse than seasonal naive 10.0"]
    assert accuracy_failures(scores, max_smape=11, snaive_tolerance=50) == [
        "x/units 2024-Q1: sMAPE 12.0 > threshold 11.0"
    ]


def test_regions_add_up_exactly_to_the_published_svr_rm_total(pg_url):
    url = pg_url
    ensure_schema(url)
    tiers = tier_history(7)
    regions = region_history(tiers)
    histories = {OVERALL.name: tiers, REGIONAL.name: regions}
    as_ofs = QUARTERS[-4:-1]
    # regional is reconciled onto svr_rm_overall's published total: without it, nothing is published
    with pytest.raises(TotalNotPublished, match="materialize forecast/svr_rm_overall"):
        publish(url, REGIONAL, regions, as_ofs[0])
    for as_of in as_ofs:
        publish(url, OVERALL, tiers, as_of)
        rows, _ = publish(url, REGIONAL, regions, as_of)
        assert set(rows["series_id"]) == {"EMEA", "Americas", "APAC", "Unknown"}

    # SVR-RM total = sum of tiers = sum of regions, exactly, per as-of quarter and metric
    sums = fetch(
        url,
        """
        select as_of_quarter, metric,
               sum(yhat::numeric) filter (where cohort = 'svr_rm_overall' and series_id = 'total') total,
               sum(yhat::numeric) filter (where cohort = 'svr_rm_overall' and series_id <> 'total') tiers,
               sum(yhat::numeric) filter (where cohort = 'regional') regions,
               sum(yhat_base::numeric) filter (where cohort = 'regional') regions_base
          from forecast.forecasts group by 1, 2 order by 1, 2""",
    )
    assert len(sums) == 3 * 2
    for _q, _metric, total, tier_sum, region_sum, region_base in sums:
        assert total == tier_sum == region_sum
        assert region_base != region_sum  # the regions' own forecasts did not add up; they were scaled
        assert abs(region_base / region_sum - 1) < 0.05
    for cohort in (OVERALL, REGIONAL):
        assert incoherent_groups(url, cohort, as_ofs[0], as_ofs[-1]) == []
    # unreconciled points kept; intervals moved with the point and still nested
    moved = fetch(url, "select count(*) from forecast.forecasts where cohort = 'regional' and yhat <> yhat_base")
    assert moved[0][0] > 0
    bad = fetch(
        url,
        """select count(*) from forecast.forecasts where cohort = 'regional' and not (
                 yhat_lo_95 <= yhat_lo_80 and yhat_lo_80 <= yhat and yhat <= yhat_hi_80 and yhat_hi_80 <= yhat_hi_95)""",
    )
    assert bad[0][0] == 0

    # re-publishing svr_rm_overall alone with a different total is caught by the coherence query
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "update forecast.forecasts set yhat = yhat + 1 where cohort = 'svr_rm_overall' and as_of_quarter = %s",
            (as_ofs[0],),
        )
    assert {(r[0], r[1]) for r in incoherent_groups(url, REGIONAL, as_ofs[0], as_ofs[-1])} == {
        (as_ofs[0], "units"),
        (as_ofs[0], "revenue"),
    }

    # accuracy before (smape_base) and after reconciliation, for the regions too
    for q in QUARTERS[-3:]:
        scores = score_quarter(url, q, "it-eval", histories)
        replace_rows(url, "forecast.evaluation", scores, "quarter = %s", (q,), "it-eval", q.isoformat())
    got = fetch(
        url,
        "select metric, count(*), avg(smape), avg(smape_base) from forecast.evaluation "
        "where cohort = 'regional' group by 1 order by 1",
    )
    assert [r[:2] for r in got] == [("revenue", 3), ("units", 3)]
    for _metric, _n, smape, base in got:
        assert smape != base and 0 <= smape < 20 and 0 <= base < 20


def c2_history(seed: int = 3) -> pl.DataFrame:
    """Services growing at their own pace plus the mart's 'All C2' row, their exact sum."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, q in enumerate(QUARTERS):
        parts = {
            s: round(base * (1 + g * i) + rng.normal(0, base * 0.05))
            for s, base, g in (("C2 Storage", 400.0, 0.05), ("C2 Backup", 250.0, 0.08), ("C2 Identity", 90.0, 0.12))
        }
        for service, seats in parts.items():
            rows.append((service, q, float(seats), float(seats) * 9.99))
        rows.append(("All C2", q, float(sum(parts.values())), float(sum(parts.values())) * 9.99))
    return pl.DataFrame(rows, schema=["series_id", "quarter_start", "units", "revenue"], orient="row")


def test_all_c2_is_the_sum_of_its_services_and_the_check_names_the_quarter_that_is_not(pg_url):
    url = pg_url
    ensure_schema(url)
    c2 = COHORTS_BY_NAME["c2_scorecard"]
    as_ofs = QUARTERS[-3:-1]
    for as_of in as_ofs:
        publish(url, c2, c2_history(), as_of)
    sums = fetch(
        url,
        """select as_of_quarter, metric,
                                sum(yhat::numeric) filter (where series_id = 'All C2'),
                                sum(yhat::numeric) filter (where series_id <> 'All C2')
                           from forecast.forecasts where cohort = 'c2_scorecard' group by 1, 2""",
    )
    assert len(sums) == 4 and all(total == parts for _q, _m, total, parts in sums)
    assert published_failures(url, c2, as_ofs) == {}
    # one partition's total drifts: the blocking check fails that quarter only, and says how
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "update forecast.forecasts set yhat = yhat + 7602 where cohort = 'c2_scorecard' "
            "and series_id = 'All C2' and metric = 'units' and as_of_quarter = %s",
            (as_ofs[1],),
        )
    failures = published_failures(url, c2, as_ofs)
    assert list(failures) == [as_ofs[1]] and "units: total" in failures[as_ofs[1]]


def test_analyst_role_reads_marts_and_forecast_and_writes_nothing(warehouse):
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("create table if not exists marts.it_probe (x int)")
        conn.execute("insert into marts.it_probe values (1)")
    with psycopg.connect(warehouse) as conn:
        conn.execute("set role analyst")
        conn.execute("select count(*) from forecast.forecasts").fetchone()
        conn.execute("select count(*) from forecast.latest").fetchone()
        conn.execute("select count(*) from forecast.latest_svr_rm_overall").fetchone()
        assert conn.execute("select x from marts.it_probe").fetchone() == (1,)  # default privileges on marts
        for statement in (
            "insert into forecast.evaluation (cohort) values ('x')",
            "delete from forecast.forecasts",
            "update marts.it_probe set x = 2",
            "create table forecast.mine (x int)",
            "create table marts.mine (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement)
    comments = fetch(
        warehouse,
        """select count(*) from pg_description d join pg_class c on c.oid = d.objoid
                                     join pg_namespace n on n.oid = c.relnamespace
                                    where n.nspname = 'forecast' and c.relname = 'forecasts' and d.objsubid > 0""",
    )
    assert comments[0][0] >= 10
    latest = fetch(
        warehouse, "select count(distinct as_of_quarter) from forecast.latest where cohort = 'svr_rm_overall'"
    )
    assert latest[0][0] <= 1


def test_engine_runs_on_a_local_dask_cluster_with_the_same_results():
    import pandas as pd
    from distributed import Client, LocalCluster

    from synoforecast.lib.forecasting import forecast_selected

    rng = np.random.default_rng(11)
    frames = []
    for i in range(6):
        y = np.resize([100.0, 105.0, 102.0, 160.0], 16) * (1 + 0.02 * i) + rng.normal(0, 3, 16)
        frames.append(
            pd.DataFrame({"unique_id": f"s{i}", "ds": pd.date_range("2020-01-01", periods=16, freq="QS"), "y": y})
        )
    df = pd.concat(frames, ignore_index=True)
    local = forecast_selected(df, distributed=False)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster),
    ):
        remote = forecast_selected(df)
    cols = ["unique_id", "ds", "model", "yhat", "yhat_lo_80", "yhat_hi_95"]
    pd.testing.assert_frame_equal(
        local.forecast[cols], remote.forecast[cols], check_exact=False, rtol=1e-5
    )  # fugue path: float noise
    assert remote.choices["model"].tolist() == local.choices["model"].tolist()


def test_run_artefacts_record_choices_provenance_and_a_plot(project_env):
    import json

    from synoforecast.defs.forecast.assets import _write_artefact

    history = tier_history(3)
    as_of = QUARTERS[-1]
    rows, choices, long = forecast_details(OVERALL, history, as_of, "run-x", 4)
    path, png = _write_artefact("run-x", OVERALL, {"2024-Q4": rows.height}, {"AutoETS": 1}, choices, long, rows)
    doc = json.loads(path.read_text())
    assert path.parent.name == "run-x" and len(doc["input_sha256"]) == 64
    assert doc["package_versions"]["statsforecast"].startswith("2.")
    assert {s["unique_id"] for s in doc["series"]} == {
        f"{t}::{m}" for t in ("T1", "T2", "T3", "total") for m in ("units", "revenue")
    }
    assert all(s["model"] and s["band"] for s in doc["series"]) and "mase_AutoETS" in doc["series"][0]
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_fit_store_keeps_fits_across_runs_and_shares_them_between_writers(warehouse):
    from synoforecast.lib.forecasting.cohort_forecast import prefetch_cohort
    from synoforecast.lib.forecasting.fit_store import load_fits, save_fits
    from synoforecast.lib.forecasting.rolling import OneStepPredictions

    history = tier_history()
    first = OneStepPredictions(load=lambda k: load_fits(warehouse, k), save=lambda f: save_fits(warehouse, f))
    prefetch_cohort(OVERALL, history, QUARTERS[14:], first, season_length=4)
    assert first.fits > 0 and first.loaded == 0
    save_fits(warehouse, {k: v + 1.0 for k, v in list(first.values.items())[:3]})  # a second writer: first write wins
    second = OneStepPredictions(load=lambda k: load_fits(warehouse, k), save=lambda f: save_fits(warehouse, f))
    prefetch_cohort(OVERALL, history, QUARTERS[14:], second, season_length=4)
    assert second.fits == 0 and second.loaded == first.fits
    assert second.values == first.values
    save_fits(warehouse, {("m", "nan-fit"): float("nan")})
    assert np.isnan(load_fits(warehouse, [("m", "nan-fit")])[("m", "nan-fit")])


def test_the_assets_rolling_pass_fits_on_the_configured_dask_cluster_or_fails_naming_it(
    pg_server, tmp_path, monkeypatch
):
    """The Dagster side: the dask_scheduler setting reaches the rolling pass (fits made on the
    cluster, kept in ops.forecast_fits, equal to a local pass's), and an unreachable scheduler
    fails the step in one line naming the address."""
    import socket

    import dagster as dg
    from distributed import LocalCluster

    from synoforecast.defs.forecast.assets import rolling_pass
    from synoforecast.lib.forecasting import rolling
    from synoforecast.lib.forecasting.cohort_forecast import prefetch_cohort
    from synoforecast.lib.forecasting.fit_store import load_fits
    from synoforecast.settings import load_settings
    from synoforecast_tests.conftest import new_database

    url = new_database(pg_server)
    ensure_schema(url)
    history, quarters = tier_history(), QUARTERS[12:]
    context = dg.build_asset_context()

    def settings(address: str):
        return load_settings({"SYNOFORECAST_HOME": str(tmp_path), "SYNOFORECAST_DASK_SCHEDULER": address})

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        one_step = rolling_pass(context, url, OVERALL, history, quarters, settings(cluster.scheduler_address))
        assert one_step._dask is not None and one_step.fits > 0
        ran = one_step._dask.run(lambda dask_worker: len(dask_worker.state.log))
        assert all(n > 0 for n in ran.values())
    local = rolling.OneStepPredictions()
    prefetch_cohort(OVERALL, history, quarters, local, season_length=4)
    keys = sorted(local.values)
    assert keys == sorted(one_step.values)
    np.testing.assert_allclose([one_step.values[k] for k in keys], [local.values[k] for k in keys], rtol=1e-9, atol=0)
    assert len(load_fits(url, keys)) == len(keys)  # what the cluster fitted is in the store

    monkeypatch.setattr(rolling, "DASK_CONNECT_TIMEOUT", "2s")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(dg.Failure) as caught:
        rolling_pass(context, url, OVERALL, history, quarters, settings(address))
    assert caught.value.description.startswith(f"forecast/svr_rm_overall: dask scheduler {address} is unreachable")
    assert "\n" not in caught.value.description
