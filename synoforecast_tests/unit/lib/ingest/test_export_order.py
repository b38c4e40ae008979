"""An older export never replaces a newer one: the pure comparison and its message."""

from __future__ import annotations

import datetime as dt

from synoforecast.lib.ingest.export_order import ExportDates, compare, export_day, from_manifest, refusal

PUBLISHED = ExportDates("/inbox/sale-out-2026-12-05.xlsx", "b" * 64, dt.date(2026, 12, 5), dt.date(2026, 12, 4))


def export(sha="a", day=dt.date(2026, 12, 5), last=dt.date(2026, 12, 4), name="other.xlsx") -> ExportDates:
    return ExportDates(f"/inbox/{name}", sha * 64, day, last)


def test_the_first_export_is_never_older():
    order = compare(export(day=dt.date(2020, 1, 1)), None)
    assert not order.older and not order.same


def test_an_earlier_export_date_is_older():
    order = compare(export(day=dt.date(2026, 9, 21), last=dt.date(2026, 12, 4)), PUBLISHED)
    assert order.older
    assert (
        "export date 2026-09-21 is before 2026-12-05" in order.summary
        and "last sale" not in order.summary.split(":")[-1]
    )


def test_an_earlier_last_sale_is_older_even_when_the_file_was_saved_later():
    """Last month's file saved again today: its mtime is new, its data is not."""
    order = compare(export(day=dt.date(2026, 12, 7), last=dt.date(2026, 11, 2)), PUBLISHED)
    assert order.older and "last sale 2026-11-02 is before 2026-12-04" in order.summary


def test_equal_dates_are_not_older_a_same_day_re_export_is_the_newer_word():
    assert not compare(export(), PUBLISHED).older
    assert not compare(export(day=dt.date(2026, 12, 6), last=dt.date(2026, 12, 4)), PUBLISHED).older


def test_the_published_export_itself_is_the_same_export_whatever_its_dates_now():
    """Same bytes copied back with an older mtime: still the published export (re-ingest is idempotent)."""
    order = compare(ExportDates("/inbox/renamed.xlsx", "b" * 64, dt.date(2026, 1, 1), dt.date(2026, 12, 4)), PUBLISHED)
    assert order.same and not order.older


def test_an_export_without_sales_is_judged_by_its_export_date():
    assert not compare(export(last=None), PUBLISHED).older
    assert compare(export(day=dt.date(2026, 12, 1), last=None), PUBLISHED).older


def test_the_refusal_names_both_files_and_dates_and_the_way_back():
    older = export(day=dt.date(2026, 9, 21), last=dt.date(2026, 9, 20), name="sale-out-2026-09-21.xlsx")
    text = refusal(older, PUBLISHED, "`synoforecast ingest --republish sale-out-2026-09-21.xlsx`")
    assert text.startswith(
        "sale-out-2026-09-21.xlsx (exported 2026-09-21, last sale 2026-09-20) is older than "
        "the published export sale-out-2026-12-05.xlsx (exported 2026-12-05, last sale 2026-12-04)"
    )
    assert "export date 2026-09-21 is before 2026-12-05 and last sale 2026-09-20 is before 2026-12-04" in text
    assert "nothing was changed" in text and "--republish sale-out-2026-09-21.xlsx" in text


def test_the_export_date_is_the_mtimes_utc_day():
    late_evening_in_new_york = dt.datetime(2026, 12, 4, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert export_day(late_evening_in_new_york) == dt.date(2026, 12, 5)
    assert export_day("2026-12-04T18:00:00+00:00") == dt.date(2026, 12, 4)


def test_dates_from_a_manifest_and_from_one_of_an_older_release():
    manifest = {
        "file": "/inbox/x.xlsx",
        "sha256": "c" * 64,
        "file_mtime": "2026-12-05T08:00:00+00:00",
        "export_order": {"export_date": "2026-12-05", "last_sale_date": "2026-12-04"},
    }
    assert from_manifest(manifest) == ExportDates("/inbox/x.xlsx", "c" * 64, dt.date(2026, 12, 5), dt.date(2026, 12, 4))
    older_release = {k: v for k, v in manifest.items() if k != "export_order"}
    assert from_manifest(older_release, dt.date(2026, 12, 3)).last_sale_date == dt.date(2026, 12, 3)
    assert from_manifest(older_release).export_date == dt.date(2026, 12, 5)
