"""One forecast asset per cohort (partition = as-of quarter) and forecast_evaluation.

Partition Q of a cohort forecast is trained on marts up to and including Q and
predicts Q+1, so backfilling a range is a rolling-origin backtest (design §1).
Each partition is published in one transaction to `forecast.forecasts`.
"""


import datetime as dt
import json
from pathlib import Path

import dagster as dg
import polars as pl

from synoforecast.defs.partitions import QUARTERLY, label, partition_quarters, quarterly_partitions
from synoforecast.defs.resources import WarehouseResource
from synoforecast.lib.cohorts import COHORTS, Cohort, series_as_of, split_unique_id, to_long
from synoforecast.lib.quarters import add_quarters, to_key
from synoforecast.lib.warehouse import query_frame, replace_rows
from synoforecast.settings import get_settings

LEVELS = (80, 95)
FORECAST_TABLE = "forecast.forecasts"
PUBLISHED_DECIMALS = 4  # far below a unit or a cent; keeps re-runs identical despite float noise


def mart_key(model: str) -> dg.AssetKey:
    return dg.AssetKey(["marts", model])


def forecast_key(cohort: Cohort) -> dg.AssetKey:
    return dg.AssetKey(["forecast", cohort.name])


def forecast_as_of(cohort: Cohort, history: pl.DataFrame, as_of: dt.date, run_id: str,
                   season_length: int) -> pl.DataFrame:
    """Rows to publish for one as-of quarter (empty when the cohort has no history yet)."""
    from synoforecast.lib.forecasting import forecast_frame  # statsforecast/numba: only where it runs

    series = series_as_of(cohort, history, as_of)
    if series.is_empty():
        return pl.DataFrame()
    long = to_long(series)
    counts = long.group_by("unique_id").agg(history_quarters=pl.len())
    predicted = pl.from_pandas(forecast_frame(long.to_pandas(), horizon=1, season_length=season_length,
                                              levels=LEVELS, freq="QS"))
    target = add_quarters(as_of, 1)
    predicted = split_unique_id(predicted.join(counts, on="unique_id"))
    return predicted.select(
        cohort=pl.lit(cohort.name),
        as_of_quarter=pl.lit(as_of),
        as_of_label=pl.lit(label(to_key(as_of))),
        target_quarter=pl.lit(target),
        target_label=pl.lit(label(to_key(target))),
        series_id=pl.col("series_id"),
        metric=pl.col("metric"),
        model=pl.col("model"),
        history_quarters=pl.col("history_quarters").cast(pl.Int32),
        yhat=pl.col("yhat").round(PUBLISHED_DECIMALS),
        **{f"yhat_{side}_{lvl}": pl.col(f"yhat_{side}_{lvl}").round(PUBLISHED_DECIMALS)
           for lvl in LEVELS for side in ("lo", "hi")},
        run_id=pl.lit(run_id),
    )


def _write_artefact(run_id: str, cohort: Cohort, published: dict[str, int], models: dict[str, int]) -> Path:
    folder = get_settings().forecasts_dir / run_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cohort.name}.json"
    path.write_text(json.dumps({"cohort": cohort.name, "rows_per_as_of": published, "models": models}, indent=2))
    return path


def build_forecast_asset(cohort: Cohort) -> dg.AssetsDefinition:
    @dg.asset(
        key=forecast_key(cohort),
        deps=[mart_key(m) for m in cohort.marts],
        **QUARTERLY,
        group_name="forecast",
        kinds={"statsforecast", "postgres"},
        description=f"{cohort.title}: next-quarter units and revenue with 80/95% intervals, as of each quarter.",
    )
    def _forecast(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        url = warehouse.get_url()
        history = query_frame(url, cohort.history_sql).sort("series_id", "quarter_start")
        quarters = partition_quarters(context)
        published: dict[str, int] = {}
        models: dict[str, int] = {}
        latest = pl.DataFrame()
        for i, as_of in enumerate(quarters, start=1):
            rows = forecast_as_of(cohort, history, as_of, context.run_id, get_settings().season_length)
            replace_rows(url, FORECAST_TABLE, rows, "cohort = %s and as_of_quarter = %s", (cohort.name, as_of),
                         context.run_id, to_key(as_of))
            published[label(to_key(as_of))] = rows.height
            if rows.height:
                latest = rows
                for model, n in rows.group_by("model").len().iter_rows():
                    models[model] = models.get(model, 0) + n
            if len(quarters) > 4 and (i % 4 == 0 or i == len(quarters)):
                context.log.info(f"{cohort.name}: as of {label(to_key(as_of))} ({i}/{len(quarters)})")
        artefact = _write_artefact(context.run_id, cohort, published, models)
        preview = latest.select("series_id", "metric", "target_label", "model", "yhat", "yhat_lo_80", "yhat_hi_80") \
            if latest.height else latest
        return dg.MaterializeResult(metadata={
            "rows_published": sum(published.values()),
            "rows_per_as_of": dg.MetadataValue.json(published),
            "models": dg.MetadataValue.json(models),
            "latest_forecast": dg.MetadataValue.md(_markdown(preview)),
            "artefact": dg.MetadataValue.path(str(artefact)),
            "dagster/row_count": sum(published.values()),
        })

    return _forecast


def build_forecast_check(cohort: Cohort) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=forecast_key(cohort), name=f"{cohort.name}_published", blocking=True,
                    partitions_def=quarterly_partitions,
                    description="Every as-of quarter with history has finite forecasts for units and revenue.")
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        quarters = partition_quarters(context)
        stats = query_frame(
            warehouse.get_url(),
            """select count(*) as n_rows, count(distinct metric) as metrics,
                      count(*) filter (where yhat = 'NaN'::float8 or yhat is null) as bad
                 from forecast.forecasts where cohort = %s and as_of_quarter between %s and %s""",
            (cohort.name, quarters[0], quarters[-1]),
        ).row(0, named=True)
        passed = stats["bad"] == 0 and (stats["n_rows"] == 0 or stats["metrics"] == 2)
        return dg.AssetCheckResult(passed=passed, metadata={k: int(v) for k, v in stats.items()})

    return _check


def _markdown(frame: pl.DataFrame, rows: int = 12) -> str:
    if frame.is_empty():
        return "_no forecast rows_"
    head = frame.head(rows)
    fmt = lambda v: f"{v:,.1f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in head.iter_rows()]
    return "\n".join(lines)


def score_quarter(url: str, quarter: dt.date, run_id: str, histories: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """MAPE and sMAPE per cohort and metric of the forecasts made at Q-1 for Q."""
    from synoforecast.lib.forecasting.metrics import mape, smape

    forecasts = query_frame(url, "select cohort, series_id, metric, yhat from forecast.forecasts "
                                 "where target_quarter = %s", (quarter,))
    rows = []
    for cohort in COHORTS:
        made = forecasts.filter(pl.col("cohort") == cohort.name)
        if made.is_empty():
            continue
        if cohort.name not in histories:
            histories[cohort.name] = query_frame(url, cohort.history_sql)
        actual = to_long(series_as_of(cohort, histories[cohort.name], quarter)) \
            .filter(pl.col("ds") == quarter)
        actual = split_unique_id(actual).select("series_id", "metric", pl.col("y").alias("actual"))
        joined = made.join(actual, on=["series_id", "metric"], how="inner")
        for metric in ("units", "revenue"):
            part = joined.filter(pl.col("metric") == metric)
            if part.is_empty():
                continue
            rows.append({
                "cohort": cohort.name, "quarter": quarter, "quarter_label": label(to_key(quarter)),
                "metric": metric, "series_scored": part.height,
                "mape": mape(part["actual"].to_numpy(), part["yhat"].to_numpy()),
                "smape": smape(part["actual"].to_numpy(), part["yhat"].to_numpy()),
                "run_id": run_id,
            })
    schema = {"cohort": pl.String, "quarter": pl.Date, "quarter_label": pl.String, "metric": pl.String,
              "series_scored": pl.Int32, "mape": pl.Float64, "smape": pl.Float64, "run_id": pl.String}
    return pl.DataFrame(rows, schema=schema)


@dg.asset(
    key=dg.AssetKey(["forecast", "forecast_evaluation"]),
    deps=[dg.AssetDep(forecast_key(c), partition_mapping=dg.TimeWindowPartitionMapping(
        start_offset=-1, end_offset=0, allow_nonexistent_upstream_partitions=True)) for c in COHORTS],
    **QUARTERLY,
    group_name="forecast",
    kinds={"postgres"},
    description="Scores, for each quarter Q, the forecasts made as of Q-1 against Q's actuals (MAPE, sMAPE).",
)
def forecast_evaluation(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    url = warehouse.get_url()
    scored: dict[str, int] = {}
    last = pl.DataFrame()
    histories: dict[str, pl.DataFrame] = {}
    for quarter in partition_quarters(context):
        rows = score_quarter(url, quarter, context.run_id, histories)
        replace_rows(url, "forecast.evaluation", rows, "quarter = %s", (quarter,), context.run_id, to_key(quarter))
        scored[label(to_key(quarter))] = rows.height
        if rows.height:
            last = rows
    summary = last.select("cohort", "metric", "series_scored", "mape", "smape") if last.height else last
    return dg.MaterializeResult(metadata={
        "rows_per_quarter": dg.MetadataValue.json(scored),
        "latest_scores": dg.MetadataValue.md(_markdown(summary)),
    })


forecast_assets = [build_forecast_asset(c) for c in COHORTS]
forecast_checks = [build_forecast_check(c) for c in COHORTS]
