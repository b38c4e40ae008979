"""Narrative texts: exact wording, number formatting and missing figures."""

from __future__ import annotations

import datetime
import math

from synoforecast.lib.activation.narratives import (
    Landing,
    NarrativeInput,
    Restatement,
    SeriesFigures,
    format_amount,
    format_change,
    narrative,
)

M = "\u2212"  # the minus sign the module uses


def svr_rm(**kw) -> NarrativeInput:
    """SVR-RM revenue for 2026-Q4: three tiers, the quarter in progress at 7 Dec, Q3 restated."""
    base = dict(
        cohort_title="SVR-RM rack-mount servers",
        target_label="2026-Q4",
        last_quarter_label="2026-Q3",
        last_year_label="2025-Q4",
        metric="revenue",
        unit="USD",
        total=SeriesFigures("svr-rm", "SVR-RM total", 25_140_000, 23_020_000, 27_380_000, 23_230_000, 22_460_000),
        parts=(
            SeriesFigures("t1", "T1", 14_600_000, last_quarter=13_400_000, last_year=12_900_000),
            SeriesFigures("t2", "T2", 7_900_000, last_quarter=7_150_000, last_year=6_800_000),
            SeriesFigures("t3", "T3", 2_640_000, last_quarter=2_680_000, last_year=2_760_000),
        ),
        landing=Landing(25_830_000, 24_900_000, 26_700_000, 18_310_000, datetime.date(2026, 12, 7), 68 / 92),
        restatements=(Restatement("2026-Q3", 22_910_000, 23_230_000),),
    )
    base.update(kw)
    return NarrativeInput(**base)


def test_svr_rm_revenue_full_text():
    assert narrative(svr_rm()) == (
        "SVR-RM rack-mount servers: revenue for 2026-Q4 is forecast at $25.1M (80% range $23.0M\u2013$27.4M), "
        "up 8.2% on 2026-Q3 ($23.2M) and up 11.9% on 2025-Q4 ($22.5M). "
        f"The largest contributors to the change on 2026-Q3 are T1 (+$1.2M), T2 (+$750.0K) and T3 ({M}$40.0K). "
        "At the 7 Dec 2026 export, 74% of the quarter gone and $18.3M sold, it is landing at $25.8M "
        "(80% range $24.9M\u2013$26.7M), 2.7% above the forecast. "
        "This export restated 2026-Q3 by +1.4% ($22.9M \u2192 $23.2M)."
    )


def test_units_and_seats_text():
    inp = NarrativeInput(
        cohort_title="Active Backup for C2",
        target_label="2026-Q4",
        last_quarter_label="2026-Q3",
        last_year_label="2025-Q4",
        metric="units",
        unit="seats",
        total=SeriesFigures("c2", "Active Backup for C2", 12_345.4, 11_800, 12_900.6, 12_400, 9_876),
    )
    assert narrative(inp) == (
        "Active Backup for C2: units for 2026-Q4 are forecast at 12,345 seats (80% range 11,800\u201312,901 seats), "
        "down 0.4% on 2026-Q3 (12,400 seats) and up 25.0% on 2025-Q4 (9,876 seats)."
    )


def test_format_amount_counts():
    assert format_amount(830, "seats") == "830 seats"
    assert format_amount(1, "seats") == "1 seat"
    assert format_amount(12_345, "units") == "12,345 units"
    assert format_amount(9_999_999, "units") == "9,999,999 units"
    assert format_amount(10_000_000, "units") == "10.0M units"
    assert format_amount(12_345_678, "units") == "12.3M units"
    assert format_amount(999_950_000, "units") == "1.0B units"
    assert format_amount(-2_500.4, "units") == f"{M}2,500 units"


def test_format_amount_usd_boundaries():
    assert format_amount(999, "USD") == "$999"
    assert format_amount(1_000, "USD") == "$1,000"
    assert format_amount(9_999, "USD") == "$9,999"
    assert format_amount(9_999.6, "USD") == "$10.0K"
    assert format_amount(10_000, "USD") == "$10.0K"
    assert format_amount(840_249, "USD") == "$840.2K"
    assert format_amount(999_949, "USD") == "$999.9K"
    assert format_amount(999_950, "USD") == "$1.0M"
    assert format_amount(25_140_000, "USD") == "$25.1M"
    assert format_amount(999_950_000, "USD") == "$1.0B"
    assert format_amount(1_234_567_000_000, "USD") == "$1,234.6B"
    assert format_amount(0, "USD") == "$0"


def test_format_amount_negative_and_missing():
    assert format_amount(-300_000, "USD") == f"{M}$300.0K"
    assert format_amount(-1_234, "USD") == f"{M}$1,234"
    assert format_amount(-0.3, "USD") == "$0"  # no sign on a figure that rounds to zero
    assert format_amount(float("nan"), "USD") == "n/a"
    assert format_amount(None, "units") == "n/a"
    assert format_amount(math.inf, "USD") == "n/a"


def test_format_change():
    assert format_change(108.2, 100) == "up 8.2%"
    assert format_change(97, 100) == "down 3.0%"
    assert format_change(100.04, 100) == "flat"
    assert format_change(100.06, 100) == "up 0.1%"
    assert format_change(100, None) is None
    assert format_change(100, 0) is None
    assert format_change(100, float("nan")) is None
    assert format_change(float("nan"), 100) is None
    assert format_change(-50, -100) == "up 50.0%"  # against |base|: less negative is up
    assert format_change(2_500, 10) == "up 24,900.0%"


def test_new_part_contributes_its_whole_forecast():
    parts = (
        SeriesFigures("a", "Acme GmbH", 300_000),
        SeriesFigures("b", "Beta AG", 1_000_000, last_quarter=1_100_000),
        SeriesFigures("c", "Gamma SA", 500_000, last_quarter=480_000),
    )
    text = narrative(svr_rm(parts=parts, landing=None, restatements=()))
    assert text.endswith(
        "The largest contributors to the change on 2026-Q3 are Acme GmbH (new, +$300.0K), "
        f"Beta AG ({M}$100.0K) and Gamma SA (+$20.0K)."
    )


def test_missing_last_year_leaves_that_comparison_out():
    total = SeriesFigures("t", "EMEA", 5_000_000, last_quarter=4_000_000)
    text = narrative(svr_rm(cohort_title="EMEA", total=total, parts=(), landing=None, restatements=()))
    assert text == "EMEA: revenue for 2026-Q4 is forecast at $5.0M, up 25.0% on 2026-Q3 ($4.0M)."


def test_zero_base_says_no_sales():
    total = SeriesFigures("t", "EMEA", 5_000_000, last_quarter=0, last_year=4_000_000)
    text = narrative(svr_rm(cohort_title="EMEA", total=total, parts=(), landing=None, restatements=()))
    assert text == (
        "EMEA: revenue for 2026-Q4 is forecast at $5.0M, up 25.0% on 2025-Q4 ($4.0M); there were no sales in 2026-Q3."
    )
    both = SeriesFigures("t", "EMEA", 5_000_000, last_quarter=0, last_year=0)
    text = narrative(svr_rm(cohort_title="EMEA", total=both, parts=(), landing=None, restatements=()))
    assert text == "EMEA: revenue for 2026-Q4 is forecast at $5.0M; there were no sales in 2026-Q3 and 2025-Q4."


def test_no_parts_and_no_change_skip_the_contributors_sentence():
    assert "contributor" not in narrative(svr_rm(parts=()))
    flat = (SeriesFigures("t1", "T1", 100, last_quarter=100), SeriesFigures("t2", "T2", 50, last_quarter=50))
    assert "contributor" not in narrative(svr_rm(parts=flat))
    assert "contributor" not in narrative(svr_rm(), contributors=0)


def test_contributors_order_limit_and_ties():
    parts = (
        SeriesFigures("z", "Zeta", 1_500_000, last_quarter=1_000_000),  # +500K
        SeriesFigures("a", "Alpha", 500_000, last_quarter=1_000_000),  # -500K, ties with Zeta: name decides
        SeriesFigures("b", "Beta", 1_900_000, last_quarter=1_000_000),  # +900K
        SeriesFigures("c", "Gamma", 1_100_000, last_quarter=1_000_000),  # +100K, fourth: left out
    )
    text = narrative(svr_rm(parts=parts, landing=None, restatements=()))
    assert text.endswith(
        f"The largest contributors to the change on 2026-Q3 are Beta (+$900.0K), Alpha ({M}$500.0K) and Zeta (+$500.0K)."
    )
    assert narrative(svr_rm(parts=tuple(reversed(parts)))) == narrative(svr_rm(parts=parts))
    one = narrative(svr_rm(parts=parts, landing=None, restatements=()), contributors=1)
    assert one.endswith("The largest contributor to the change on 2026-Q3 is Beta (+$900.0K).")


def test_negative_changes_everywhere():
    total = SeriesFigures("t", "SVR-RM total", 20_000_000, 18_000_000, 22_000_000, 22_000_000, 25_000_000)
    parts = (SeriesFigures("t1", "T1", 12_000_000, last_quarter=14_000_000),)
    landing = Landing(19_000_000, None, None, 15_000_000, datetime.date(2026, 12, 1), 0.66)
    text = narrative(
        svr_rm(
            total=total, parts=parts, landing=landing, restatements=(Restatement("2026-Q3", 23_000_000, 22_000_000),)
        )
    )
    assert text == (
        "SVR-RM rack-mount servers: revenue for 2026-Q4 is forecast at $20.0M (80% range $18.0M\u2013$22.0M), "
        "down 9.1% on 2026-Q3 ($22.0M) and down 20.0% on 2025-Q4 ($25.0M). "
        f"The largest contributor to the change on 2026-Q3 is T1 ({M}$2.0M). "
        "At the 1 Dec 2026 export, 66% of the quarter gone and $15.0M sold, it is landing at $19.0M, 5.0% below the forecast. "
        f"This export restated 2026-Q3 by {M}4.3% ($23.0M \u2192 $22.0M)."
    )


def test_none_and_nan_fields_are_missing():
    nan = float("nan")
    total = SeriesFigures("t", "SVR-RM total", 25_000_000, nan, 27_000_000, None, nan)
    parts = (
        SeriesFigures("t1", "T1", nan, last_quarter=1_000_000),  # no forecast: not a contributor
        SeriesFigures("t2", "T2", 2_000_000, last_quarter=nan),  # no last quarter: new
    )
    landing = Landing(26_000_000, nan, None, nan, datetime.date(2026, 11, 3), nan)
    restatements = (Restatement("2026-Q2", nan, 1.0), Restatement("2026-Q3", 0, 120_000))
    text = narrative(svr_rm(total=total, parts=parts, landing=landing, restatements=restatements))
    assert text == (
        "SVR-RM rack-mount servers: revenue for 2026-Q4 is forecast at $25.0M. "
        "The largest contributor to the change on 2026-Q3 is T2 (new, +$2.0M). "
        "At the 3 Nov 2026 export it is landing at $26.0M, 4.0% above the forecast. "
        "This export restated 2026-Q3 ($0 \u2192 $120.0K)."
    )


def test_missing_forecast_and_landing_without_forecast():
    nan = float("nan")
    total = SeriesFigures("t", "SVR-RM total", nan, last_quarter=1_000_000)
    landing = Landing(26_000_000, None, None, 0, datetime.date(2026, 10, 15), 0.15)
    text = narrative(svr_rm(total=total, parts=(), landing=landing, restatements=()))
    assert text == (
        "SVR-RM rack-mount servers: no revenue forecast for 2026-Q4. "
        "At the 15 Oct 2026 export, 15% of the quarter gone and $0 sold, it is landing at $26.0M."
    )
    no_yhat = Landing(nan, None, None, 0, datetime.date(2026, 10, 15), 0.1)
    assert "landing" not in narrative(svr_rm(landing=no_yhat))


def test_landing_in_line_with_forecast():
    landing = Landing(25_140_000.5, None, None, 1_000_000, datetime.date(2026, 10, 2), 0.02)
    text = narrative(svr_rm(parts=(), landing=landing, restatements=()))
    assert text.endswith(
        "At the 2 Oct 2026 export, 2% of the quarter gone and $1.0M sold, it is landing at $25.1M, in line with the forecast."
    )
    late = Landing(25_140_000, None, None, 25_000_000, datetime.date(2026, 12, 31), 1.02)  # rounding past the end
    assert "At the 31 Dec 2026 export, 100% of the quarter gone and $25.0M sold," in narrative(svr_rm(landing=late))
