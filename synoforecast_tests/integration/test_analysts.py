"""What an analyst opens, read as `analyst` after two exports: names, one SVR-RM total,
the chart-ready view, forecasts as they were made (vintages) and the narratives (issue 28)."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from synoforecast.sample.generator import SampleSpec, write_sample_workbook
from synoforecast_tests.conftest import fetch, isolated_project, new_database
from synoforecast_tests.support.definitions import reload_definitions

pytestmark = pytest.mark.integration

# one history, exported twice: in August (2026-Q3 in progress) and in October (Q3 complete)
HISTORY = dict(rows=3000, seed=5, start=dt.date(2023, 10, 1), quarters=13, as_of=dt.date(2026, 10, 20))
AUGUST = dt.date(2026, 8, 12)
Q3, Q4 = dt.date(2026, 7, 1), dt.date(2026, 10, 1)
Q3_FORECAST = """select yhat from forecast.forecasts where cohort = 'svr_rm_overall' and series_id = 'total'
                   and metric = 'revenue' and target_quarter = '2026-07-01'"""


@pytest.fixture(scope="module")
def exports(pg_server, tmp_path_factory):
    try:
        with isolated_project(tmp_path_factory.mktemp("analysts"), new_database(pg_server)) as project:
            project["monkeypatch"].setenv("SYNOFORECAST_FORECAST_WORKERS", "1")
            reload_definitions()
            from synoforecast.cli.main import main

            august = project["inbox"] / "sale-out-august.xlsx"
            write_sample_workbook(august, SampleSpec(**HISTORY, cutoff=AUGUST))
            assert main(["ingest", str(august), "--json"]) == 0
            project["august_q3"] = fetch(project["url"], Q3_FORECAST)[0][0]
            october = project["inbox"] / "sale-out-october.xlsx"
            # more lines over the same quarters: the October export restates the history August saw
            revised = {**HISTORY, "rows": HISTORY["rows"] + 300}
            write_sample_workbook(october, SampleSpec(**revised, cutoff=HISTORY["as_of"]))  # dated its export day
            assert main(["ingest", str(october), "--json"]) == 0
            yield project
    finally:
        reload_definitions()


@pytest.fixture(scope="module")
def analyst(exports):
    """A login member of `analyst`, as an administrator would create one (docs/analysts.md)."""
    from synoforecast.lib.warehouse.connection import parse_url

    with psycopg.connect(exports["url"], autocommit=True) as conn:
        conn.execute("drop role if exists ana")
        conn.execute("create role ana login password 'ana-pw' in role analyst")
    parts = parse_url(exports["url"])
    with psycopg.connect(
        host=parts.host, port=parts.port, dbname=parts.dbname, user="ana", password="ana-pw", autocommit=True
    ) as conn:
        yield conn


def rows(conn, sql, params=()):
    return conn.execute(sql, params).fetchall()


def test_series_carry_the_names_of_the_latest_export(analyst, exports):
    named = dict(
        rows(
            analyst,
            "select series_id, series_name from published.latest where cohort = 'svr_rm_top_customers' "
            "and metric = 'revenue'",
        )
    )
    customers = {s: n for s, n in named.items() if s not in ("total", "all_other")}
    assert customers and all(n and n != s for s, n in customers.items()), named
    assert named["total"] == "SVR-RM total" and named["all_other"] == "All other customers"
    # the names are the export's own: every one is a Customer the SVR-RM sheet spells for that id
    with psycopg.connect(exports["url"]) as conn:  # raw is the platform's, not the analyst's
        spelled = set(conn.execute("select distinct customer_id, customer from raw.svr_rm").fetchall())
    assert set(customers.items()) <= spelled
    # the landing, the chart view and the vintages name their series too
    for view in ("published.latest_landing", "published.chart_series", "published.vintages"):
        (missing,) = rows(analyst, f"select count(*) from {view} where series_name is null")[0]
        assert missing == 0, view
        assert rows(analyst, f"select count(*) from {view} where series_name <> series_id")[0][0] > 0, view


def test_the_svr_rm_total_is_one_number_in_every_cohort(analyst):
    # forecasts (point and range), every as-of quarter
    forecast = rows(
        analyst,
        """select as_of_quarter, metric,
                  count(distinct (yhat::numeric, yhat_lo_80::numeric, yhat_hi_80::numeric))
             from published.forecasts
            where (cohort in ('svr_rm_overall', 'svr_rm_top_customers') and series_id = 'total')
            group by 1, 2 having count(distinct (yhat::numeric, yhat_lo_80::numeric, yhat_hi_80::numeric)) <> 1""",
    )
    assert forecast == []
    regions = rows(
        analyst,
        """select f.as_of_quarter, f.metric from published.forecasts f
             join (select as_of_quarter, metric, sum(yhat::numeric) s from published.forecasts
                    where cohort = 'regional' group by 1, 2) r using (as_of_quarter, metric)
            where f.cohort = 'svr_rm_overall' and f.series_id = 'total' and f.yhat::numeric <> r.s""",
    )
    assert regions == []
    # actuals in the chart view, and the landing of the quarter in progress
    actuals = rows(
        analyst,
        """select quarter_start, metric, count(distinct actual::numeric) from published.chart_series
            where series_id = 'total' and cohort in ('svr_rm_overall', 'svr_rm_top_customers') and actual is not null
            group by 1, 2 having count(distinct actual::numeric) <> 1""",
    )
    assert actuals == []
    landing = rows(
        analyst,
        """select metric, count(distinct (yhat::numeric, qtd_actual::numeric)) from published.latest_landing
            where series_id = 'total' and cohort in ('svr_rm_overall', 'svr_rm_top_customers') group by 1""",
    )
    assert sorted(landing) == [("revenue", 1), ("units", 1)]
    # the tier map's unknown models are an explicit part, not left out of one cohort
    assert rows(analyst, "select series_name from published.latest where series_id = 'Unknown' limit 1") == [
        ("Unknown tier",)
    ]


def test_one_chart_view_holds_actual_forecast_bands_and_the_landing(analyst):
    chart = rows(
        analyst,
        """select quarter_start, actual, forecast, forecast_lo_95, forecast_lo_80, forecast_hi_80, forecast_hi_95,
                  landing, landing_lo_80, landing_hi_80, quarter_to_date
             from published.chart_series
            where cohort = 'svr_rm_overall' and series_id = 'total' and metric = 'revenue' order by 1""",
    )
    past = [r for r in chart if r[0] < Q4]
    assert len(past) >= 4 and all(r[1] is not None and r[2] is not None for r in past)
    assert all(r[3] <= r[4] <= r[2] <= r[5] <= r[6] for r in past if r[3] is not None)
    running = [r for r in chart if r[0] == Q4]
    assert len(running) == 1 and running[0][1] is None  # the quarter in progress has no actual yet
    landing, lo, hi, to_date = running[0][7:11]
    assert lo <= landing <= hi and to_date > 0


def test_vintages_keep_each_exports_forecast_as_made_and_score_it(analyst, exports):
    made = rows(
        analyst,
        """select export_date, target_quarter, yhat, landing_cutoff, landing_yhat, actual, smape
             from published.vintages where cohort = 'svr_rm_overall' and series_id = 'total' and metric = 'revenue'
            order by export_date""",
    )
    assert [(r[0], r[1]) for r in made] == [(AUGUST, Q3), (HISTORY["as_of"], Q4)]
    august, october = made
    assert august[3] == AUGUST and august[4] is not None  # its landing, as made in August
    assert august[5] is not None and 0 <= august[6] <= 200  # Q3 closed in October: scored
    assert october[5] is None  # Q4 is still running
    # the October export re-fitted Q3's forecast on its revised history; the vintage kept August's
    (refit,) = rows(analyst, Q3_FORECAST.replace("forecast.forecasts", "published.forecasts"))[0]
    assert august[2] == exports["august_q3"] != refit
    sources = {s for (s,) in rows(analyst, "select distinct source from published.accuracy where quarter = %s", (Q3,))}
    assert sources == {"backtest", "vintage"}


def test_narratives_tell_each_cohort_in_words(analyst):
    told = dict(
        ((c, m), t)
        for c, m, t in rows(analyst, "select cohort, metric, narrative from published.narratives order by 1, 2")
    )
    from synoforecast.lib.forecasting.cohorts import COHORTS

    assert set(told) == {(c.name, m) for c in COHORTS for m in ("units", "revenue")}
    svr = told[("svr_rm_overall", "revenue")]
    assert svr.startswith("SVR-RM rack-mount servers: revenue for 2026-Q4 is forecast at $")
    assert "on 2026-Q3" in svr and "2025-Q4" in svr and "landing at $" in svr
    assert "contributor" in svr  # the tiers that drive the change


def test_the_analyst_writes_nothing(analyst):
    for sql in ("delete from forecast.vintages", "insert into published.series_names values ('a', 'b', 'c')"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            analyst.execute(sql)


def test_every_table_view_and_column_the_platform_writes_says_what_it_holds(analyst, exports):
    """The comments an analyst reads in psql (\\d+) and Metabase shows: none missing, and a
    second pass has nothing to write."""
    from synoforecast.lib.warehouse.descriptions import describe_statements, undescribed

    assert undescribed(analyst, "published") == [] and undescribed(analyst, "forecast") == []
    (text,) = analyst.execute("select col_description('published.chart_series'::regclass, 3)").fetchone()
    assert text.startswith("The series' name for people"), text  # a column the view computes
    (text,) = analyst.execute("select obj_description('published.forecasts'::regclass, 'pg_class')").fetchone()
    assert text.startswith("Next-quarter forecasts per cohort"), text  # a copy: its forecast table's
    with psycopg.connect(exports["url"]) as conn:
        assert describe_statements(conn, "published") == [] and describe_statements(conn, "forecast") == []


def test_metabase_shows_the_warehouse_descriptions_of_the_platform_views(exports):
    """catalog_docs: dbt's texts for the marts, the warehouse's comments for the rest, pushed
    into Metabase's data model (the stand-in) in one pass."""
    from synoforecast.lib.activation.metabase_catalog import catalog_docs, push_descriptions
    from synoforecast.settings import DBT_PROJECT_DIR
    from synoforecast_tests.support.http_standin import StandIn, metabase_config

    docs = catalog_docs(DBT_PROJECT_DIR, exports["url"])
    assert docs["mart_svr_rm_quarterly"].columns["quarter_start"].startswith("First day of the quarter")  # dbt's
    assert docs["chart_series"].description.startswith("One row per cohort, series, metric and quarter")
    with StandIn(api_key="mb_SecretKey-1234567890") as standin:
        standin.synced = {"published.chart_series": ["series_name", "landing"], "published.vintages": ["within_80"]}
        cfg = metabase_config(standin, "mb_SecretKey-1234567890")
        report = push_descriptions(cfg, docs)
        assert report.tables == {"published.chart_series": "updated", "published.vintages": "updated"}
        edits = sorted(e["description"] for e in standin.field_edits.values())
        assert edits == sorted(
            docs[t].columns[c]
            for t, c in [("chart_series", "series_name"), ("chart_series", "landing"), ("vintages", "within_80")]
        )
        assert standin.table_edits[standin.table_id("published.vintages")]["description"].startswith("Every published")
