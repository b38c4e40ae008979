"""Short texts that tell an analyst or sales manager what one cohort's forecast says.

Pure library (no Dagster, no database): the caller reads the warehouse and fills a
``NarrativeInput``; this module only words it. None, NaN and infinite figures count as
missing, so a gap in the data drops a clause instead of printing "nan" or crashing.
Negative amounts carry the Unicode minus (U+2212), ranges the en dash.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass

__all__ = ["Landing", "NarrativeInput", "Restatement", "SeriesFigures", "format_amount", "format_change", "narrative"]

MINUS = "\u2212"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class SeriesFigures:
    series_id: str
    series_name: str
    forecast: float
    lo_80: float | None = None
    hi_80: float | None = None
    last_quarter: float | None = None  # actual of the quarter before the target quarter
    last_year: float | None = None  # actual of the same quarter one year before the target


@dataclass(frozen=True)
class Landing:
    """The target quarter is in progress: where it will land."""

    yhat: float
    lo_80: float | None
    hi_80: float | None
    qtd_actual: float
    cutoff: datetime.date  # export day
    elapsed_share: float  # 0..1 of the quarter's days elapsed


@dataclass(frozen=True)
class Restatement:
    """A material restatement of a closed quarter in this export."""

    quarter_label: str
    before: float
    after: float


@dataclass(frozen=True)
class NarrativeInput:
    cohort_title: str
    target_label: str
    last_quarter_label: str
    last_year_label: str
    metric: str  # "revenue" (USD) or "units"
    unit: str  # "USD", "units" or "seats"
    total: SeriesFigures
    parts: tuple[SeriesFigures, ...] = ()
    landing: Landing | None = None
    restatements: tuple[Restatement, ...] = ()


def _num(x: float | None) -> float | None:
    """A finite float, or None: the one place that decides what counts as missing."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _scaled(a: float, steps: tuple[tuple[str, float], ...]) -> str:
    """One decimal with the smallest suffix whose rounded figure stays below 1000 (999,950 -> 1.0M, not 1000.0K)."""
    for suffix, div in steps[:-1]:
        text = f"{a / div:.1f}"
        if float(text) < 1000:
            return text + suffix
    suffix, div = steps[-1]
    return f"{a / div:,.1f}{suffix}"


def format_amount(value: float | None, unit: str) -> str:
    """'$25.1M', '$840.2K', '$1,234', '12,345 units', '12.3M units', '830 seats'; 'n/a' when missing.

    Dollars keep whole figures below $10K, where a suffix would hide most of the number;
    counts keep whole figures below 10M because analysts compare them to the unit.
    """
    v = _num(value)
    if v is None:
        return "n/a"
    a = abs(v)
    if unit.upper() == "USD":
        body = f"{round(a):,}" if round(a) < 10_000 else _scaled(a, (("K", 1e3), ("M", 1e6), ("B", 1e9)))
        text = "$" + body
    else:
        body = f"{round(a):,}" if round(a) < 10_000_000 else _scaled(a, (("M", 1e6), ("B", 1e9)))
        label = unit[:-1] if body == "1" and unit.endswith("s") else unit
        text = f"{body} {label}"
    return (MINUS + text) if v < 0 and any(c in "123456789" for c in body) else text


def _signed(value: float, unit: str) -> str:
    return ("+" if value >= 0 else MINUS) + format_amount(abs(value), unit)


def _pct(now: float | None, before: float | None) -> float | None:
    """Relative change in percent, against |before| so a negative base (net returns) keeps the direction."""
    now, before = _num(now), _num(before)
    if now is None or before is None or before == 0:
        return None
    return (now - before) / abs(before) * 100


def format_change(now: float, before: float | None) -> str | None:
    """'up 8.2%', 'down 3.0%', 'flat' (below 0.05%); None without a usable base (missing or zero)."""
    p = _pct(now, before)
    if p is None:
        return None
    if abs(p) < 0.05:
        return "flat"
    return f"{'up' if p > 0 else 'down'} {abs(p):,.1f}%"


def _range(lo: float | None, hi: float | None, unit: str) -> str:
    """' (80% range $23.0M–$27.4M)', or '11,800–12,901 seats' with the count unit said once; '' when open."""
    if _num(lo) is None or _num(hi) is None:
        return ""
    lo_text = format_amount(lo, unit)
    if unit.upper() != "USD":
        lo_text = lo_text.rsplit(" ", 1)[0]
    return f" (80% range {lo_text}\u2013{format_amount(hi, unit)})"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _forecast_sentence(inp: NarrativeInput) -> str:
    t, u = inp.total, inp.unit
    verb = "are" if inp.metric.endswith("s") else "is"
    if _num(t.forecast) is None:
        return f"{inp.cohort_title}: no {inp.metric} forecast for {inp.target_label}."
    head = f"{inp.cohort_title}: {inp.metric} for {inp.target_label} {verb} forecast at {format_amount(t.forecast, u)}"
    head += _range(t.lo_80, t.hi_80, u)
    changes, no_sales = [], []
    for label, base in ((inp.last_quarter_label, t.last_quarter), (inp.last_year_label, t.last_year)):
        if _num(base) == 0:
            no_sales.append(label)
        elif (change := format_change(t.forecast, base)) is not None:
            changes.append(f"{change} on {label} ({format_amount(base, u)})")
    if changes:
        head += ", " + _and(changes)
    if no_sales:
        head += f"; there were no sales in {_and(no_sales)}"
    return head + "."


def _contributors_sentence(inp: NarrativeInput, n: int) -> str | None:
    """The parts that move the total most against last quarter; a part without last quarter is new."""
    moves = []
    for p in inp.parts:
        f, lq = _num(p.forecast), _num(p.last_quarter)
        if f is None:
            continue
        delta = f if lq is None else f - lq
        if delta != 0:
            moves.append((-abs(delta), p.series_name, delta, lq is None))
    top = sorted(moves)[: max(n, 0)]
    if not top:
        return None
    named = [f"{name} ({'new, ' if new else ''}{_signed(delta, inp.unit)})" for _, name, delta, new in top]
    subject = "contributors" if len(named) > 1 else "contributor"
    verb = "are" if len(named) > 1 else "is"
    return f"The largest {subject} to the change on {inp.last_quarter_label} {verb} {_and(named)}."


def _landing_sentence(inp: NarrativeInput) -> str | None:
    ld, u = inp.landing, inp.unit
    if ld is None or _num(ld.yhat) is None:
        return None
    when = f"{ld.cutoff.day} {_MONTHS[ld.cutoff.month - 1]} {ld.cutoff.year}" if ld.cutoff else "latest"
    so_far = []
    if (share := _num(ld.elapsed_share)) is not None:
        so_far.append(f"{round(min(max(share, 0.0), 1.0) * 100)}% of the quarter gone")
    if _num(ld.qtd_actual) is not None:
        so_far.append(f"{format_amount(ld.qtd_actual, u)} sold")
    lead = f"At the {when} export" + (", " + _and(so_far) + "," if so_far else "")
    text = f"{lead} it is landing at {format_amount(ld.yhat, u)}{_range(ld.lo_80, ld.hi_80, u)}"
    if (p := _pct(ld.yhat, inp.total.forecast)) is not None:
        vs = "in line with" if abs(p) < 0.05 else f"{abs(p):,.1f}% {'above' if p > 0 else 'below'}"
        text += f", {vs} the forecast"
    return text + "."


def _restatement_sentence(inp: NarrativeInput) -> str | None:
    items = []
    for r in inp.restatements:
        if _num(r.before) is None or _num(r.after) is None:
            continue
        p = _pct(r.after, r.before)
        by = "" if p is None else f" by {'+' if p >= 0 else MINUS}{abs(p):,.1f}%"
        items.append(
            f"{r.quarter_label}{by} ({format_amount(r.before, inp.unit)} \u2192 {format_amount(r.after, inp.unit)})"
        )
    return f"This export restated {_and(items)}." if items else None


def narrative(inp: NarrativeInput, contributors: int = 3) -> str:
    """Forecast, largest contributors, landing and restatements, each only when its figures exist."""
    parts = (_contributors_sentence(inp, contributors), _landing_sentence(inp), _restatement_sentence(inp))
    return " ".join([_forecast_sentence(inp), *(s for s in parts if s)])
