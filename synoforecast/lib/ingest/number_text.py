"""Numbers written as text, read in the one convention their column uses.

European systems write `1.234,50`, American ones `1,234.50`, and `1.234` alone could be
either. Guessing per cell read a distributor's `27.673,35` as 27.67 (1,000x too small).
So a column's decimal separator is inferred from its unambiguous values (`1.234,50`,
`12,5`, `1,234.50`, `0.75`, `1.234.567`) and applied to every cell; a column whose
unambiguous values disagree is reported as a conflict (the reader refuses it, naming two
cells); a column with none keeps the default reading (decimal point, `,` groups
thousands). Accounting brackets `(1,234.00)` and a trailing minus `1.234,50-` are negative.
Pure polars, vectorised: 1M cells take ~0.3 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

# removed before reading: spaces of every kind (`1 234,50`, no-break and thin spaces as
# thousands groups), the Swiss apostrophe group, currency signs
_NOISE = r"[\s\x{00a0}\x{202f}\x{2009}'’$€£]"
_BODY = r"^(?:\d[\d.,]*)?\d(?:[eE][+-]?\d+)?$|^[.,]\d+$"
DEFAULT_DECIMAL = "."


@dataclass(frozen=True)
class NumberReading:
    values: pl.Series  # Float64; null where a cell is not a number
    decimal: str  # "." or ","
    unambiguous: int  # cells whose spelling showed the decimal separator
    conflict: tuple[int, int] | None = None  # positions of a decimal-point and a decimal-comma cell

    def describe(self) -> str:
        """How the column was read, for the manifest."""
        name = "decimal point, ',' groups thousands" if self.decimal == "." else "decimal comma, '.' groups thousands"
        if self.unambiguous:
            return f"{name} (inferred from {self.unambiguous:,} unambiguous values)"
        return f"{name} (no unambiguous value: the default)"


def _evidence(body: pl.Expr) -> pl.Expr:
    """The decimal separator a spelling proves, or null when it proves none."""
    dots, commas = body.str.count_matches(r"\."), body.str.count_matches(",")
    last_separator = body.str.extract(r"([.,])[^.,]*$", 1)
    single = pl.when(dots > 0).then(pl.lit(".")).otherwise(pl.lit(","))
    other = pl.when(dots > 0).then(pl.lit(",")).otherwise(pl.lit("."))
    integer_part = body.str.extract(r"^(\d*)[.,]", 1)
    fraction = body.str.extract(r"[.,](\d+)(?:[eE].*)?$", 1)
    # one separator, three digits after, a group of 1-3 digits before that is not "0": 1.234 or 1,234
    ambiguous = (fraction.str.len_chars() == 3) & integer_part.str.contains(r"^[1-9]\d{0,2}$")
    return (
        pl.when((dots > 0) & (commas > 0))
        .then(last_separator)
        .when((dots + commas) > 1)
        .then(other)  # the separator repeats: it groups thousands
        .when(((dots + commas) == 1) & ~ambiguous)
        .then(single)
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def _plain_evidence(plain: pl.Series) -> pl.Series:
    """`_evidence` for cells of digits, dots and a leading minus only (calamine's typed numbers,
    and most text): found with literal searches, 10x cheaper than the regular expressions."""
    minus = plain.str.starts_with("-").cast(pl.Int32)
    dots = plain.str.count_matches(".", literal=True)
    at = plain.str.find(".", literal=True).cast(pl.Int32)
    after = plain.str.len_bytes().cast(pl.Int32) - at - 1
    zero = plain.str.starts_with("0.") | plain.str.starts_with("-0.")  # `0.750` is a decimal, not a thousands group
    ambiguous = (after == 3) & (at - minus).is_between(1, 3) & ~zero
    return pl.select(
        pl.when(dots > 1)
        .then(pl.lit(","))
        .when((dots == 1) & ~ambiguous)
        .then(pl.lit("."))
        .otherwise(pl.lit(None, dtype=pl.String))
    ).to_series()


def read_numbers(text: pl.Series, trusted: pl.Series | None = None) -> NumberReading:
    """Parse a column of stripped text cells. `trusted` (optional, boolean) marks cells that
    were typed numbers in the workbook: they are read with a decimal point and prove nothing."""
    raw = text.cast(pl.String)
    plain = ~raw.str.contains(r"[^\d.\-]|.-").fill_null(True)
    if trusted is None and plain.all():  # the usual column: typed numbers or plain text
        evidence = _plain_evidence(raw)
        comma_at, point_at = evidence.eq(",").arg_true(), evidence.eq(".").arg_true()
        if not len(comma_at):
            values = raw.cast(pl.Float64, strict=False)
            values = pl.select(pl.when(values.is_finite()).then(values)).to_series().alias(text.name)
            return NumberReading(values, DEFAULT_DECIMAL, len(point_at))
    return _read_general(raw, trusted, text.name)


def _read_general(raw: pl.Series, trusted: pl.Series | None, name: str) -> NumberReading:
    frame = pl.DataFrame({"raw": raw})
    if trusted is not None:
        frame = frame.with_columns(trusted=trusted.fill_null(False))
    else:
        frame = frame.with_columns(trusted=pl.lit(False))
    cleaned = pl.col("raw").str.replace_all(_NOISE, "")
    bracketed = cleaned.str.contains(r"^\(.*\)$")
    trailing_minus = cleaned.str.contains(r"^[^-+].*-$")
    unwrapped = cleaned.str.replace(r"^\((.*)\)$", "$1").str.replace(r"-$", "")
    signed_minus = unwrapped.str.starts_with("-")
    body = unwrapped.str.replace(r"^[+-]", "")
    shaped = frame.with_columns(
        body=pl.when(body.str.contains(_BODY)).then(body),
        negative=(bracketed | trailing_minus | signed_minus).fill_null(False),
    ).with_columns(evidence=pl.when(~pl.col("trusted")).then(_evidence(pl.col("body"))))
    comma_at = shaped["evidence"].eq(",").arg_true()
    point_at = shaped["evidence"].eq(".").arg_true()
    conflict = (int(point_at[0]), int(comma_at[0])) if len(comma_at) and len(point_at) else None
    decimal = "," if len(comma_at) > len(point_at) else DEFAULT_DECIMAL
    text_decimal = (
        pl.col("body").str.replace_all(r"\.", "").str.replace(",", ".")
        if decimal == ","
        else pl.col("body").str.replace_all(",", "")
    )
    # a typed number arrives as calamine writes it (`1234.5`): never re-read in the text convention
    normalised = pl.when(pl.col("trusted")).then(pl.col("body")).otherwise(text_decimal)
    number = normalised.cast(pl.Float64, strict=False)
    values = (
        shaped.select(pl.when(number.is_finite()).then(pl.when(pl.col("negative")).then(-number).otherwise(number)))
        .to_series()
        .alias(name)
    )
    return NumberReading(values, decimal, len(comma_at) + len(point_at), conflict)
