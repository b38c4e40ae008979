"""The narratives analysts and the summary read: one text per cohort and metric for the
quarter the published forecasts target, written from the `published` views.

Each text is built by lib/activation/narratives.py from the cohort's total (or, for a cohort
without one, the sum of its series), its parts, the actuals of the quarter before and of the
same quarter a year before, the landing while the quarter runs and the material
restatements of this export. Rows are kept per export in forecast.narratives (DDL in
lib/warehouse/schema.py);
`published.narratives` shows the published export's.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from synoforecast.lib.activation.narratives import Landing, NarrativeInput, Restatement, SeriesFigures, narrative
from synoforecast.lib.forecasting.cohorts import COHORTS, Cohort
from synoforecast.lib.quarters import add_quarters, quarter_label
from synoforecast.lib.warehouse.connection import connect, partition_lock, query_frame

# the workbook sheet whose restatements a cohort reports (as ops.restatements names them)
SHEET_OF = {"svr_rm_overall": "SVR-RM", "svr_rm_top_customers": "SVR-RM", "regional": "SVR-RM"}
SHEET_OF |= {"consumer_trend": "Consumer", "c2_scorecard": "C2"}
RESTATED_METRIC = {"units": ("units", "seats"), "revenue": ("revenue", "mrr")}
TITLES = {
    "svr_rm_overall": "SVR-RM rack-mount servers",
    "svr_rm_top_customers": "SVR-RM top customers",
    "regional": "SVR-RM by region",
    "consumer_trend": "Consumer NAS",
    "c2_scorecard": "Synology C2 services",
}


def _unit(cohort: Cohort, metric: str) -> str:
    if metric == "revenue":
        return "USD"
    return "seats" if metric in cohort.stock_metrics else "units"


def _total_id(cohort: Cohort, series: set[str]) -> str | None:
    for candidate in (cohort.parent, "total"):
        if candidate in series:
            return candidate
    return None


def _figures(rows: pl.DataFrame, actuals: dict, last_q: dt.date, last_y: dt.date) -> list[SeriesFigures]:
    return [
        SeriesFigures(
            series_id=r["series_id"],
            series_name=r["series_name"],
            forecast=r["yhat"],
            lo_80=r["yhat_lo_80"],
            hi_80=r["yhat_hi_80"],
            last_quarter=actuals.get((r["series_id"], last_q)),
            last_year=actuals.get((r["series_id"], last_y)),
        )
        for r in rows.iter_rows(named=True)
    ]


def cohort_narratives(
    url: str, snapshot_sha256: str, material_share: float, fiscal_year_start_month: int = 1
) -> pl.DataFrame:
    """One row per cohort and metric (cohort, metric, target_quarter, target_label,
    landing_cutoff, narrative) from the published views of the published export; restatements
    of at least `material_share` (settings.restatement_material_share) are told."""
    latest = query_frame(
        url,
        "select cohort, series_id, series_name, metric, target_quarter, yhat, yhat_lo_80, yhat_hi_80 "
        "from published.latest order by cohort, series_id, metric",
    )
    if latest.is_empty():
        return pl.DataFrame()
    actuals = query_frame(url, "select cohort, series_id, metric, quarter_start, actual from published.actuals")
    landing = query_frame(
        url,
        "select cohort, series_id, metric, quarter_start, cutoff_date, elapsed_share, qtd_actual, yhat, "
        "yhat_lo_80, yhat_hi_80 from published.latest_landing",
    )
    restated = query_frame(
        url,
        "select sheet, quarter_start, metric, published_value::float8 as before, new_value::float8 as after, share "
        "from ops.restatements where snapshot_sha256 = %s order by quarter_start",
        (snapshot_sha256,),
    )
    out = []
    for cohort in COHORTS:
        mine = latest.filter(pl.col("cohort") == cohort.name)
        if mine.is_empty():
            continue
        target = mine["target_quarter"].max()
        last_q, last_y = add_quarters(target, -1), add_quarters(target, -4)
        for metric in ("units", "revenue"):
            rows = mine.filter(pl.col("metric") == metric)
            if rows.is_empty():
                continue
            known = {
                (r["series_id"], r["quarter_start"]): r["actual"]
                for r in actuals.filter((pl.col("cohort") == cohort.name) & (pl.col("metric") == metric)).iter_rows(
                    named=True
                )
            }
            figures = _figures(rows, known, last_q, last_y)
            total_id = _total_id(cohort, {f.series_id for f in figures})
            parts = tuple(f for f in figures if f.series_id != total_id)
            total = next((f for f in figures if f.series_id == total_id), None) or _sum(cohort, parts)
            land = landing.filter(
                (pl.col("cohort") == cohort.name)
                & (pl.col("metric") == metric)
                & (pl.col("series_id") == total.series_id)
                & (pl.col("quarter_start") == target)
            )
            story = NarrativeInput(
                cohort_title=TITLES.get(cohort.name, cohort.title),
                target_label=quarter_label(target, fiscal_year_start_month),
                last_quarter_label=quarter_label(last_q, fiscal_year_start_month),
                last_year_label=quarter_label(last_y, fiscal_year_start_month),
                metric=metric,
                unit=_unit(cohort, metric),
                total=total,
                parts=parts,
                landing=_landing(land),
                restatements=_restatements(restated, cohort, metric, material_share, fiscal_year_start_month),
            )
            out.append(
                {
                    "cohort": cohort.name,
                    "metric": metric,
                    "target_quarter": target,
                    "target_label": story.target_label,
                    "landing_cutoff": story.landing.cutoff if story.landing else None,
                    "narrative": narrative(story),
                }
            )
    return pl.DataFrame(out)


def _sum(cohort: Cohort, parts: tuple[SeriesFigures, ...]) -> SeriesFigures:
    """A cohort without a total series (regions): its parts summed, named after the cohort."""

    def add(values):
        held = [v for v in values if v is not None]
        return sum(held) if len(held) == len(values) and held else None

    return SeriesFigures(
        series_id="total",
        series_name=TITLES.get(cohort.name, cohort.name),
        forecast=sum(p.forecast for p in parts),
        last_quarter=add([p.last_quarter for p in parts]),
        last_year=add([p.last_year for p in parts]),
    )


def _landing(rows: pl.DataFrame) -> Landing | None:
    if rows.is_empty():
        return None
    r = rows.row(0, named=True)
    return Landing(
        yhat=r["yhat"],
        lo_80=r["yhat_lo_80"],
        hi_80=r["yhat_hi_80"],
        qtd_actual=r["qtd_actual"],
        cutoff=r["cutoff_date"],
        elapsed_share=r["elapsed_share"],
    )


def _restatements(
    frame: pl.DataFrame, cohort: Cohort, metric: str, material_share: float, fiscal: int
) -> tuple[Restatement, ...]:
    if frame.is_empty():
        return ()
    mine = frame.filter(
        (pl.col("sheet") == SHEET_OF.get(cohort.name, ""))
        & pl.col("metric").is_in(list(RESTATED_METRIC[metric]))
        & (pl.col("share").abs() >= material_share)
    )
    return tuple(
        Restatement(quarter_label(r["quarter_start"], fiscal), r["before"], r["after"])
        for r in mine.iter_rows(named=True)
    )


def write_narratives(url: str, snapshot_sha256: str, frame: pl.DataFrame) -> int:
    """Replace the export's narratives in one transaction (the landing run rewrites them with
    the landing). Returns rows written."""
    with connect(url) as conn, conn.transaction():
        partition_lock(conn, "forecast.narratives", snapshot_sha256)  # the pipeline's and the landing's take turns
        conn.execute("delete from forecast.narratives where snapshot_sha256 = %s", (snapshot_sha256,))
        with conn.cursor() as cur:
            cur.executemany(
                "insert into forecast.narratives (snapshot_sha256, cohort, metric, target_quarter, target_label, "
                "landing_cutoff, narrative) values (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        snapshot_sha256,
                        r["cohort"],
                        r["metric"],
                        r["target_quarter"],
                        r["target_label"],
                        r["landing_cutoff"],
                        r["narrative"],
                    )
                    for r in frame.iter_rows(named=True)
                ],
            )
    return frame.height


def tell_published(
    url: str, snapshot_sha256: str, material_share: float, fiscal_year_start_month: int = 1
) -> pl.DataFrame:
    """Write the narratives of `snapshot_sha256` when it is the published export (after the
    switch; the landing run again, with its landing). Returns them (empty when not published)."""
    from synoforecast.lib.warehouse.published import published_snapshot

    if (published_snapshot(url) or ("",))[0] != snapshot_sha256:
        return pl.DataFrame()
    frame = cohort_narratives(url, snapshot_sha256, material_share, fiscal_year_start_month)
    write_narratives(url, snapshot_sha256, frame)
    return frame


def published_narratives(url: str) -> pl.DataFrame:
    """cohort, metric, target_label, narrative of the published export ({} before the first)."""
    if query_frame(url, "select to_regclass('published.narratives') is not null").item():
        return query_frame(
            url, "select cohort, metric, target_label, narrative from published.narratives order by 1, 2"
        )
    return pl.DataFrame(
        schema={"cohort": pl.String, "metric": pl.String, "target_label": pl.String, "narrative": pl.String}
    )
