"""The rolling pass's fits kept in the warehouse (`ops.forecast_fits`), across runs.

A store for :class:`synoforecast.lib.forecasting.rolling.OneStepPredictions`: keys are
content hashes, so concurrent runs of different cohorts may share it (a key written twice is
the same fit; the second write is skipped) and nothing ever needs invalidating by date.
"""

from __future__ import annotations

import io

from synoforecast.lib.warehouse.connection import connect

Key = tuple[str, str]


def load_fits(url: str, keys: list[Key]) -> dict[Key, float]:
    """The stored predictions of `keys` (missing keys are absent from the result)."""
    by_model: dict[str, list[str]] = {}
    for mk, pk in keys:
        by_model.setdefault(mk, []).append(pk)
    found: dict[Key, float] = {}
    with connect(url) as conn, conn.cursor() as cur:
        for mk, prefixes in by_model.items():
            cur.execute(
                "select prefix_key, yhat from ops.forecast_fits where model_key = %s and prefix_key = any(%s)",
                (mk, prefixes),
            )
            found.update({(mk, pk): float("nan") if v is None else v for pk, v in cur.fetchall()})
    return found


def save_fits(url: str, fits: dict[Key, float]) -> None:
    """Add `fits` to the store in one transaction (keys already stored are left as they are)."""
    if not fits:
        return
    buffer = io.StringIO()
    for (mk, pk), v in fits.items():
        buffer.write(f"{mk}\t{pk}\t{'NaN' if v != v else repr(float(v))}\n")
    with connect(url) as conn, conn.transaction(), conn.cursor() as cur:
        cur.execute("create temporary table new_fits (model_key text, prefix_key text, yhat float8) on commit drop")
        with cur.copy("copy new_fits from stdin") as copy:
            copy.write(buffer.getvalue())
        cur.execute(
            "insert into ops.forecast_fits (model_key, prefix_key, yhat) "
            "select model_key, prefix_key, yhat from new_fits on conflict do nothing"
        )
