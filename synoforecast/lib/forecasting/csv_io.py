"""CSV in / CSV out around :func:`forecast_frame`.

Input: a header row with at least ``unique_id``, ``ds``, ``y`` (other columns are
ignored).  ``ds`` must be an ISO date (``YYYY-MM-DD``, a time part is allowed); ``y``
must be a finite number (blank is an error); ``unique_id`` must not be blank; each
(unique_id, ds) may appear once.  Errors are :class:`ForecastInputError` naming the
file, the 1-based line number (header = line 1), the column and the bad value.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence

import numpy as np
import pandas as pd

from synoforecast.lib.files import atomic_path

from .engine import DEFAULT_LEVELS, ForecastInputError, forecast_frame, output_columns

__all__ = ["REQUIRED_COLUMNS", "forecast_csv", "read_long_csv"]

REQUIRED_COLUMNS = ("unique_id", "ds", "y")


def read_long_csv(path) -> pd.DataFrame:
    """Read and validate a long-format CSV -> DataFrame unique_id (str), ds, y (float).

    Rows keep file order; blank lines are skipped.
    """
    name = str(path)
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ForecastInputError(f"{name}: cannot open: {exc.strerror or exc}") from None
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
            if header is None:
                raise ForecastInputError(f"{name}: file is empty (expected a header row)")
            header = [h.strip() for h in header]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                found = ", ".join(repr(h) for h in header if h) or "(none)"
                raise ForecastInputError(
                    f"{name} line 1: missing required column(s) "
                    f"{', '.join(repr(c) for c in missing)}; found columns: {found}"
                )
            for c in REQUIRED_COLUMNS:
                if header.count(c) > 1:
                    raise ForecastInputError(f"{name} line 1: column {c!r} appears twice")
            idx = [header.index(c) for c in REQUIRED_COLUMNS]
            width = max(idx) + 1
            lines: list[int] = []
            cols: tuple[list[str], list[str], list[str]] = ([], [], [])
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) < width:
                    row = row + [""] * (width - len(row))
                lines.append(reader.line_num)
                for store, i in zip(cols, idx):
                    store.append(row[i])
        except csv.Error as exc:
            raise ForecastInputError(f"{name} line {reader.line_num}: malformed CSV: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ForecastInputError(f"{name}: not UTF-8 text ({exc.reason})") from None

    line_no = np.asarray(lines, dtype=np.int64)
    uid_raw = pd.Series(cols[0], dtype=object)
    ds_raw = pd.Series(cols[1], dtype=object)
    y_raw = pd.Series(cols[2], dtype=object)

    def fail(mask: np.ndarray, column: str, values: pd.Series, problem: str):
        i = int(np.flatnonzero(mask)[0])
        extra = int(mask.sum()) - 1
        more = f" ({extra} more such row{'s' if extra != 1 else ''})" if extra else ""
        raise ForecastInputError(
            f"{name} line {line_no[i]}: column {column!r} value {values.iloc[i]!r} {problem}{more}"
        )

    blank_uid = (uid_raw.str.strip() == "").to_numpy(dtype=bool)
    if blank_uid.any():
        fail(blank_uid, "unique_id", uid_raw, "is blank")

    ds_str = ds_raw.str.strip()
    ds = pd.to_datetime(ds_str, format="ISO8601", errors="coerce")
    bad_ds = ds.isna().to_numpy(dtype=bool)
    if bad_ds.any():
        fail(bad_ds, "ds", ds_raw, "is not a date (expected YYYY-MM-DD)")
    if getattr(ds.dt, "tz", None) is not None:
        ds = ds.dt.tz_localize(None)

    y_str = y_raw.str.strip()
    y = pd.to_numeric(y_str, errors="coerce").astype("float64")
    blank_y = (y_str == "").to_numpy(dtype=bool)
    bad_y = ~np.isfinite(y.to_numpy())
    first_bad = np.flatnonzero(bad_y)
    if first_bad.size:
        if blank_y[first_bad[0]]:
            fail(bad_y, "y", y_raw, "is blank (a number is required)")
        fail(bad_y, "y", y_raw, "is not a number")

    out = pd.DataFrame(
        {"unique_id": uid_raw.to_numpy(dtype=object), "ds": ds.astype("datetime64[ns]").to_numpy(), "y": y.to_numpy()}
    )
    dup = out.duplicated(["unique_id", "ds"], keep=False).to_numpy()
    if dup.any():
        later = out.duplicated(["unique_id", "ds"], keep="first").to_numpy()
        i = int(np.flatnonzero(later)[0])
        uid, when = out["unique_id"].iloc[i], out["ds"].iloc[i]
        same = np.flatnonzero((out["unique_id"].to_numpy() == uid) & (out["ds"].to_numpy() == when.to_datetime64()))
        raise ForecastInputError(
            f"{name} line {line_no[i]}: duplicate (unique_id, ds) = "
            f"({uid!r}, {ds_raw.iloc[i].strip()!r}), already on line {line_no[same[0]]}"
        )
    return out


def _write_atomic(frame: pd.DataFrame, output_path) -> None:
    with atomic_path(output_path) as partial, partial.open("w", newline="", encoding="utf-8") as fh:
        frame.to_csv(fh, index=False, lineterminator="\n")


def forecast_csv(
    input_path,
    output_path,
    horizon: int = 1,
    season_length: int = 4,
    levels: Sequence[int] = DEFAULT_LEVELS,
    freq: str | None = None,
    *,
    select: bool = True,
    windows: int | None = None,
) -> pd.DataFrame:
    """Read ``input_path``, forecast, write ``output_path``; return the forecast frame.

    ``select=True`` (default) combines the candidates by pooled, shrunken backtest errors with
    split-conformal intervals (see :mod:`.selection`); ``False`` uses the history-length rule.

    Output CSV columns: unique_id, ds (YYYY-MM-DD), yhat, yhat_lo_<L>, yhat_hi_<L> for
    each level (ascending), and ``model`` last.  The returned frame has the same
    columns in the same order, with ``ds`` as datetime64.  The file is replaced
    atomically (written to a temporary file in the same directory first).
    """
    history = read_long_csv(input_path)
    fc = forecast_frame(
        history, horizon=horizon, season_length=season_length, levels=levels, freq=freq, select=select, windows=windows
    )
    cols = [c for c in output_columns(levels) if c != "model"] + ["model"]
    fc = fc[cols]
    written = fc.assign(ds=fc["ds"].dt.strftime("%Y-%m-%d"))
    _write_atomic(written, output_path)
    return fc
