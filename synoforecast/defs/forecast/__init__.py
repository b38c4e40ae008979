"""Forecast domain: one asset per cohort, their publish checks, the one-SVR-RM-total gate, and forecast_evaluation."""

import dagster as dg

from synoforecast.defs.forecast.assets import forecast_assets, forecast_checks, forecast_evaluation
from synoforecast.defs.forecast.checks import svr_rm_one_total

defs = dg.Definitions(assets=[*forecast_assets, forecast_evaluation], asset_checks=[*forecast_checks, svr_rm_one_total])
