"""Content fingerprints defined by the project: sha256 over canonical row bytes.

polars' `hash_rows` is documented as unstable across polars versions, so nothing that is
persisted (per-quarter hashes in manifests, `ops.partition_state`) may use it. Here every
value is rendered as text by rules this module owns (ISO dates, integers, money in whole
cents, booleans as t/f, NULL as \\N), rows are sorted (row order in the export does not
matter) and the sorted rows are hashed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import polars as pl

NULL = "\\N"
EMPTY = hashlib.sha256(b"").hexdigest()[:32]


def _canonical(frame: pl.DataFrame, column: str) -> pl.Expr:
    dtype = frame.schema[column]
    col = pl.col(column)
    if dtype == pl.Date:
        text = col.dt.strftime("%Y-%m-%d")
    elif dtype == pl.Boolean:
        text = pl.when(col).then(pl.lit("t")).otherwise(pl.lit("f"))
    elif dtype.is_float():  # money and decimals: whole cents, no float formatting involved
        text = (col * 100).round(0).cast(pl.Int64).cast(pl.String)
    elif dtype.is_integer():
        text = col.cast(pl.Int64).cast(pl.String)
    else:
        text = col.cast(pl.String).str.replace_all("\\", "\\\\", literal=True)
    return pl.when(col.is_null()).then(pl.lit(NULL)).otherwise(text)


def canonical_rows(frame: pl.DataFrame, columns: Iterable[str]) -> pl.Series:
    """One canonical text line per row over `columns` (in that order)."""
    cols = list(columns)
    if not cols:
        return pl.Series("row", [""] * frame.height, dtype=pl.String)
    return frame.select(pl.concat_str([_canonical(frame, c) for c in cols], separator="\x1f").alias("row")).to_series()


def digest(lines: pl.Series) -> str:
    """sha256 of the sorted lines (32 hex chars); the empty set has a fixed digest."""
    if lines.is_empty():
        return EMPTY
    joined = lines.sort().str.join("\n").item()
    return hashlib.sha256(joined.encode()).hexdigest()[:32]


def frame_digest(frame: pl.DataFrame, columns: Iterable[str]) -> str:
    return digest(canonical_rows(frame, columns))


def grouped_digests(frame: pl.DataFrame, key: str, columns: Iterable[str]) -> dict[str, str]:
    """Digest of each group of rows, keyed by the group's value of `key` (a date column) as ISO text."""
    cols = list(columns)
    if frame.is_empty():
        return {}
    lines = frame.select(pl.col(key), canonical_rows(frame, cols))
    return {
        group.isoformat(): digest(part["row"])
        for (group,), part in lines.partition_by(key, as_dict=True, maintain_order=True).items()
    }


def combine(parts: Iterable[str]) -> str:
    """Digest of an ordered list of digests (or labels): fingerprints built from fingerprints."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]
