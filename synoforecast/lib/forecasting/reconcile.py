"""Bottom-up reconciliation: a parent series is replaced by the sum of its children.

Works on a published-forecast-shaped polars frame (series_id, metric, yhat,
yhat_lo_<L>, yhat_hi_<L>, ...).  For each metric (and each ``keys`` group), the
parent's point forecast becomes exactly the sum of its children's points; the
parent's own intervals are shifted by the same amount (their width is the parent
model's, which is better calibrated than summing the children's bounds, which would
assume perfectly correlated children).  The unreconciled point is kept in
``yhat_base`` (children: unchanged) so accuracy can be reported before and after.

Rounding: children are rounded first and the parent is the sum of the rounded
children, so the published numbers add up exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

__all__ = ["bottom_up", "incoherence"]


def bottom_up(frame: pl.DataFrame, parent: str, children: Sequence[str] | None = None, *,
              keys: Sequence[str] = ("metric",), decimals: int | None = None) -> pl.DataFrame:
    """Reconcile ``parent`` to the sum of ``children`` (default: every other series_id)."""
    if frame.is_empty():
        return frame.with_columns(yhat_base=pl.lit(None, dtype=pl.Float64)) if "yhat_base" not in frame.columns \
            else frame
    bands = [c for c in frame.columns if c.startswith(("yhat_lo_", "yhat_hi_"))]
    out = frame
    if decimals is not None:
        out = out.with_columns([pl.col(c).round(decimals) for c in ["yhat", *bands]])
    if "yhat_base" not in out.columns:
        out = out.with_columns(yhat_base=pl.col("yhat"))
    is_child = pl.col("series_id").is_in(list(children)) if children is not None \
        else pl.col("series_id") != parent
    sums = out.filter(is_child).group_by(list(keys)).agg(child_sum=pl.col("yhat").sum())
    out = out.join(sums, on=list(keys), how="left")
    shift = pl.when((pl.col("series_id") == parent) & pl.col("child_sum").is_not_null()) \
        .then(pl.col("child_sum") - pl.col("yhat")).otherwise(0.0)
    out = out.with_columns(_shift=shift)
    out = out.with_columns([(pl.col(c) + pl.col("_shift")) for c in ["yhat", *bands]])
    if decimals is not None:
        out = out.with_columns([pl.col(c).round(decimals) for c in bands])
    if decimals is not None:  # the shifted parent must equal the sum of the rounded children exactly
        out = out.with_columns(
            yhat=pl.when(pl.col("series_id") == parent)
            .then(pl.col("child_sum").round(decimals).fill_null(pl.col("yhat")))
            .otherwise(pl.col("yhat")))
    return out.drop("child_sum", "_shift").select(frame.columns + [c for c in ["yhat_base"]
                                                                  if c not in frame.columns])


def incoherence(frame: pl.DataFrame, parent: str, children: Sequence[str] | None = None, *,
                keys: Sequence[str] = ("metric",), column: str = "yhat") -> float:
    """Largest |parent - sum(children)| over the key groups (0.0 when coherent or no parent)."""
    is_child = pl.col("series_id").is_in(list(children)) if children is not None \
        else pl.col("series_id") != parent
    kids = frame.filter(is_child).group_by(list(keys)).agg(s=pl.col(column).sum())
    top = frame.filter(pl.col("series_id") == parent).select(*keys, p=pl.col(column))
    joined = top.join(kids, on=list(keys), how="inner")
    if joined.is_empty():
        return 0.0
    return float((joined["p"] - joined["s"]).abs().max())
