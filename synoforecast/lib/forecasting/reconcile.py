"""Reconciliation: bottom-up (a parent becomes the sum of its children) and top-down
(children are scaled to a given total).

Works on a published-forecast-shaped polars frame (series_id, metric, yhat,
yhat_lo_<L>, yhat_hi_<L>, ...).  For each metric (and each ``keys`` group), the
parent's point forecast becomes exactly the sum of its children's points; the
parent's own intervals are shifted by the same amount (their width is the parent
model's, which is better calibrated than summing the children's bounds, which would
assume perfectly correlated children).  The unreconciled point is kept in
``yhat_base`` (children: unchanged) so accuracy can be reported before and after.

Rounding: children are rounded first and the parent is the sum of the rounded
children, so the published numbers add up exactly.

Top-down (:func:`top_down`) is for a second hierarchy over a total published
elsewhere (SVR-RM regions against the tier-reconciled SVR-RM total): each child's
point becomes ``total * share``, shares proportional to the children's own
(non-negative) points, and the rounding remainder is handed out by largest remainder
so the rounded children add up to the rounded total exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

__all__ = ["bottom_up", "incoherence", "proportional_split", "top_down"]


def bottom_up(
    frame: pl.DataFrame,
    parent: str,
    children: Sequence[str] | None = None,
    *,
    keys: Sequence[str] = ("metric",),
    decimals: int | None = None,
) -> pl.DataFrame:
    """Reconcile ``parent`` to the sum of ``children`` (default: every other series_id)."""
    if frame.is_empty():
        return (
            frame.with_columns(yhat_base=pl.lit(None, dtype=pl.Float64)) if "yhat_base" not in frame.columns else frame
        )
    bands = [c for c in frame.columns if c.startswith(("yhat_lo_", "yhat_hi_"))]
    out = frame
    if decimals is not None:
        out = out.with_columns([pl.col(c).round(decimals) for c in ["yhat", *bands]])
    if "yhat_base" not in out.columns:
        out = out.with_columns(yhat_base=pl.col("yhat"))
    is_child = pl.col("series_id").is_in(list(children)) if children is not None else pl.col("series_id") != parent
    sums = out.filter(is_child).group_by(list(keys)).agg(child_sum=pl.col("yhat").sum())
    out = out.join(sums, on=list(keys), how="left")
    shift = (
        pl.when((pl.col("series_id") == parent) & pl.col("child_sum").is_not_null())
        .then(pl.col("child_sum") - pl.col("yhat"))
        .otherwise(0.0)
    )
    out = out.with_columns(_shift=shift)
    out = out.with_columns([(pl.col(c) + pl.col("_shift")) for c in ["yhat", *bands]])
    if decimals is not None:
        out = out.with_columns([pl.col(c).round(decimals) for c in bands])
    if decimals is not None:  # the shifted parent must equal the sum of the rounded children exactly
        out = out.with_columns(
            yhat=pl.when(pl.col("series_id") == parent)
            .then(pl.col("child_sum").round(decimals).fill_null(pl.col("yhat")))
            .otherwise(pl.col("yhat"))
        )
    return out.drop("child_sum", "_shift").select(frame.columns + [c for c in ["yhat_base"] if c not in frame.columns])


def incoherence(
    frame: pl.DataFrame,
    parent: str,
    children: Sequence[str] | None = None,
    *,
    keys: Sequence[str] = ("metric",),
    column: str = "yhat",
) -> float:
    """Largest |parent - sum(children)| over the key groups (0.0 when coherent or no parent)."""
    is_child = pl.col("series_id").is_in(list(children)) if children is not None else pl.col("series_id") != parent
    kids = frame.filter(is_child).group_by(list(keys)).agg(s=pl.col(column).sum())
    top = frame.filter(pl.col("series_id") == parent).select(*keys, p=pl.col(column))
    joined = top.join(kids, on=list(keys), how="inner")
    if joined.is_empty():
        return 0.0
    return float((joined["p"] - joined["s"]).abs().max())


def proportional_split(total: float, weights: Sequence[float], decimals: int) -> list[float]:
    """``total`` split in proportion to ``weights`` (negative weights count as 0; all zero:
    equal shares), rounded to ``decimals`` so that the parts add up to the rounded total
    exactly (largest-remainder rounding in units of ``10**-decimals``)."""
    w = np.clip(np.asarray(weights, dtype="float64"), 0.0, None)
    n = len(w)
    if n == 0:
        return []
    unit = 10**decimals
    whole = int(round(float(total) * unit))
    share = w / w.sum() if w.sum() > 0 and np.isfinite(w.sum()) else np.full(n, 1.0 / n)
    raw = whole * share
    floor = np.floor(raw).astype("int64")
    rest = whole - int(floor.sum())  # 0 <= rest < n
    order = np.argsort(-(raw - floor), kind="stable")
    floor[order[:rest]] += 1
    return [round(int(v) / unit, decimals) for v in floor]


def top_down(
    frame: pl.DataFrame, totals: pl.DataFrame, *, keys: Sequence[str] = ("metric",), decimals: int = 4
) -> pl.DataFrame:
    """Scale every series of ``frame`` so that, per ``keys`` group, the points add up to the
    ``total`` column of ``totals`` (one row per group) exactly after rounding to ``decimals``.

    The share of each series is its own point over the group's sum (negative points count
    as 0).  ``yhat_base`` keeps the unreconciled point (set from ``yhat`` when absent); the
    interval bounds move with the point (the series model's width is kept).  Groups without
    a total are left unchanged (``yhat`` rounded)."""
    bands = [c for c in frame.columns if c.startswith(("yhat_lo_", "yhat_hi_"))]
    out = frame if "yhat_base" in frame.columns else frame.with_columns(yhat_base=pl.col("yhat"))
    out = out.with_columns([pl.col(c).round(decimals) for c in ["yhat", *bands]]).with_row_index("_row")
    if out.is_empty():
        return out.drop("_row")
    target = {tuple(r[:-1]): r[-1] for r in totals.select(*keys, "total").iter_rows()}
    new = out["yhat"].to_list()
    for key, group in out.group_by(list(keys), maintain_order=True):
        total = target.get(tuple(key))
        if total is None:
            continue
        parts = proportional_split(total, group["yhat"].to_list(), decimals)
        for row, value in zip(group["_row"].to_list(), parts):
            new[row] = value
    out = out.with_columns(_shift=pl.Series(new, dtype=pl.Float64) - pl.col("yhat"))
    out = out.with_columns([(pl.col(c) + pl.col("_shift")).round(decimals) for c in bands])
    out = out.with_columns(yhat=pl.Series(new, dtype=pl.Float64))
    return out.drop("_row", "_shift").select(frame.columns + [c for c in ["yhat_base"] if c not in frame.columns])
