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
    infer_freq,
    output_columns,
)
from .metrics import mape, smape

__all__ = [
    "DEFAULT_ETS_MODEL",
    "DEFAULT_LEVELS",
    "MODEL_AUTOETS",
    "MODEL_NAIVE",
    "MODEL_SEASONAL_NAIVE",
    "REQUIRED_COLUMNS",
    "ForecastInputError",
    "choose_model",
    "forecast_csv",
    "forecast_frame",
    "infer_freq",
    "mape",
    "output_columns",
    "read_long_csv",
    "smape",
]
