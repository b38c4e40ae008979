"""Forecasting engine usable without Dagster: frames and CSV files in, forecasts out."""

from .csv_io import REQUIRED_COLUMNS, forecast_csv, read_long_csv
from .engine import (
    DEFAULT_ETS_MODEL,
    DEFAULT_LEVELS,
    MODEL_AUTOETS,
    MODEL_NAIVE,
    MODEL_SEASONAL_NAIVE,
    ForecastInputError,
    choose_model,
    forecast_frame,
    forecast_selected,
    infer_freq,
    output_columns,
)
from .metrics import bias, coverage, mape, mase, smape

__all__ = [
    "DEFAULT_ETS_MODEL",
    "DEFAULT_LEVELS",
    "MODEL_AUTOETS",
    "MODEL_NAIVE",
    "MODEL_SEASONAL_NAIVE",
    "REQUIRED_COLUMNS",
    "ForecastInputError",
    "bias",
    "choose_model",
    "coverage",
    "forecast_csv",
    "forecast_frame",
    "forecast_selected",
    "infer_freq",
    "mape",
    "mase",
    "output_columns",
    "read_long_csv",
    "smape",
]
