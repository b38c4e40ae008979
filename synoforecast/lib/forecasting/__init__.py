"""Forecasting engine usable without Dagster: frames and CSV files in, forecasts out.

The names below load on first use (PEP 562), so importing a light submodule (metrics,
intervals, reconcile: what the landing uses) never loads statsforecast and statsmodels,
which cost ~3.5 s in a fresh process."""

from importlib import import_module

_HOME = {
    **dict.fromkeys(("REQUIRED_COLUMNS", "forecast_csv", "read_long_csv"), "csv_io"),
    **dict.fromkeys(
        (
            "DEFAULT_ETS_MODEL",
            "DEFAULT_LEVELS",
            "MODEL_AUTOETS",
            "MODEL_NAIVE",
            "MODEL_SEASONAL_NAIVE",
            "ForecastInputError",
            "choose_model",
            "forecast_frame",
            "forecast_selected",
            "infer_freq",
            "output_columns",
        ),
        "engine",
    ),
    **dict.fromkeys(("bias", "coverage", "mape", "mase", "smape"), "metrics"),
}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
