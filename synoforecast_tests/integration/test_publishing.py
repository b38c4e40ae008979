"""The publishing mechanism on a real PostgreSQL: per-partition locks and unique grains
under concurrent writers, partition state recorded with the rows, and the published
switch that refuses to publish a mix."""

from __future__ import annotations

import datetime as dt
import multiprocessing

import polars as pl
import psycopg
import pytest

from synoforecast.lib.warehouse.connection import ensure_schema, replace_rows
from synoforecast_tests.conftest import fetch

pytestmark = pytest.mark.integration

AS_OF = dt.date(2025, 4, 1)


def forecast_rows(run: str, n: int = 40) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "cohort": ["svr_rm_overall"] * n,
            "as_of_quarter": [AS_OF] * n,
            "as_of_label": ["2025-Q2"] * n,
            "target_quarter": [dt.date(2025, 7, 1)] * n,
            "target_label": ["2025-Q3"] * n,
            "series_id": [f"s{i}" for i in range(n)],
            "metric": ["units"] * n,
            "model": ["AutoETS"] * n,
            "history_quarters": [8] * n,
            "yhat": [float(i) for i in range(n)],
            "run_id": [run] * n,
        }
    )


def publish(url: str, run: str = "r1", **kwargs) -> None:
    """The run's forecast rows into svr_rm_overall's 2025-Q2 partition."""
    replace_rows(
        url,
        "forecast.forecasts",
        forecast_rows(run),
        "cohort = %s and as_of_quarter = %s",
        ("svr_rm_overall", AS_OF),
        run,
        "2025-04-01",
        **kwargs,
    )


def _hammer(url: str, run: str, times: int, errors) -> None:
    try:
        for _ in range(times):
            publish(url, run)
    except Exception as exc:  # reported to the parent: the assertion names it
        errors.put(f"{type(exc).__name__}: {exc}")


def test_two_processes_replacing_one_partition_take_turns(pg_url):
    ensure_schema(pg_url)
    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(pg_url, run, 25, errors)) for run in ("run-a", "run-b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    problems = [errors.get() for _ in range(errors.qsize())]
    assert problems == []
    assert fetch(pg_url, "select count(*), count(distinct series_id), count(distinct run_id) from forecast.forecasts")[
        0
    ] == (40, 40, 1)
    state = fetch(pg_url, "select target, scope, partition_key, run_id from ops.partition_state")
    assert len(state) == 1 and state[0][:3] == ("forecast.forecasts", "svr_rm_overall|2025-04-01", "2025-04-01")
    assert state[0][3] == fetch(pg_url, "select run_id from forecast.forecasts limit 1")[0][0]


def test_the_unique_grain_refuses_a_second_row_set(pg_url):
    ensure_schema(pg_url)
    publish(pg_url)
    with pytest.raises(psycopg.errors.UniqueViolation):
        replace_rows(
            pg_url, "forecast.forecasts", forecast_rows("r2"), "cohort = %s", ("nothing-matches",), "r2", "2025-04-01"
        )


def test_an_existing_warehouse_with_duplicates_gets_its_unique_grain(pg_url):
    with psycopg.connect(pg_url) as conn:  # a warehouse of the previous release: no unique index
        from synoforecast.lib.warehouse.schema import FORECAST_COLUMNS, create_table_sql

        conn.execute("create schema forecast")
        conn.execute(create_table_sql("forecast", "forecasts", FORECAST_COLUMNS))
        conn.commit()
    from synoforecast.lib.warehouse.connection import connect, copy_frame

    with connect(pg_url) as conn, conn.transaction():
        copy_frame(conn, "forecast.forecasts", forecast_rows("old"))
        copy_frame(conn, "forecast.forecasts", forecast_rows("old"))
    ensure_schema(pg_url)
    assert fetch(pg_url, "select count(*) from forecast.forecasts")[0][0] == 40
    assert fetch(pg_url, "select count(*) from pg_indexes where indexname = 'forecasts_grain_uq'")[0][0] == 1


def test_the_switch_refuses_a_mix_and_publishes_a_complete_export(pg_url):
    from synoforecast.lib.warehouse.connection import connect
    from synoforecast.lib.warehouse.published import NotPublishable, published_snapshot, switch

    ensure_schema(pg_url)
    with connect(pg_url) as conn, conn.transaction():
        conn.execute("insert into ops.run_snapshots values ('r1', 'sha-b')")
    publish(pg_url, fingerprint="fp-b")
    expected = {"forecast.forecasts": {"2025-04-01": "fp-b", "2025-07-01": "fp-b2"}}
    with pytest.raises(NotPublishable, match="1 quarter partition.*2025-07-01"):
        switch(pg_url, "sha-b", "r1", expected, {}, ["svr_rm_overall"])
    assert published_snapshot(pg_url) is None
    assert fetch(pg_url, "select to_regclass('published.forecasts')")[0][0] is None

    expected["forecast.forecasts"].pop("2025-07-01")
    result = switch(pg_url, "sha-b", "r1", expected, {}, ["svr_rm_overall"])
    assert result.tables["published.forecasts"] == 40
    assert fetch(pg_url, "select count(*) from published.latest_svr_rm_overall")[0][0] == 40
    assert published_snapshot(pg_url) == ("sha-b", "r1")
