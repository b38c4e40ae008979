"""Forecast domain: one asset per cohort, their publish checks, and forecast_evaluation."""

import dagster as dg

from synoforecast.defs.forecast.assets import forecast_assets, forecast_checks, forecast_evaluation

defs = dg.Definitions(assets=[*forecast_assets, forecast_evaluation], asset_checks=forecast_checks)
