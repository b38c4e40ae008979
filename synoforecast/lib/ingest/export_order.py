"""Exports are ordered by their own dates: an older export never replaces a newer one.

An export is dated twice: its export date (the file's mtime, as a UTC day: what the reader
dates the export by) and its last SVR-RM sale date. It is older than the published export
when either date is earlier; equal dates are not older (a corrected re-export of the same
day is the newer word). The published export itself, whatever its name or mtime now
(same sha256), is the same export: re-ingesting it is always allowed. Re-publishing an
older export is the operator's explicit rollback (`synoforecast ingest --republish`).

Pure: the manifests come from lib/ingest/snapshots.py; no Dagster, no warehouse.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ExportDates:
    file: str
    sha256: str
    export_date: dt.date
    last_sale_date: dt.date | None

    @property
    def name(self) -> str:
        return Path(self.file).name

    def describe(self) -> str:
        last = self.last_sale_date.isoformat() if self.last_sale_date else "none"
        return f"{self.name} (exported {self.export_date.isoformat()}, last sale {last})"

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "export_date": self.export_date.isoformat(),
            "last_sale_date": self.last_sale_date.isoformat() if self.last_sale_date else None,
        }


def export_day(mtime: dt.datetime | str) -> dt.date:
    """The export date: the file's mtime as a UTC calendar day."""
    stamp = dt.datetime.fromisoformat(mtime) if isinstance(mtime, str) else mtime
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.astimezone(dt.UTC).date()


def from_manifest(manifest: dict, last_sale_date: dt.date | None = None) -> ExportDates:
    """The dates a snapshot manifest records (`last_sale_date` when an older manifest lacks it)."""
    recorded = manifest.get("export_order", {})
    last = recorded.get("last_sale_date")
    return ExportDates(
        file=manifest["file"],
        sha256=manifest["sha256"],
        export_date=dt.date.fromisoformat(recorded["export_date"])
        if recorded.get("export_date")
        else export_day(manifest["file_mtime"]),
        last_sale_date=dt.date.fromisoformat(last) if last else last_sale_date,
    )


@dataclass(frozen=True)
class Order:
    older: bool
    same: bool  # the published export itself
    summary: str


def compare(candidate: ExportDates, published: ExportDates | None) -> Order:
    """Whether `candidate` is older than the published export, and why, in one sentence."""
    if published is None:
        return Order(False, False, "no export published yet")
    if candidate.sha256 == published.sha256:
        return Order(False, True, f"the published export itself ({published.describe()})")
    reasons = []
    if candidate.export_date < published.export_date:
        reasons.append(f"export date {candidate.export_date.isoformat()} is before {published.export_date.isoformat()}")
    if candidate.last_sale_date and published.last_sale_date and candidate.last_sale_date < published.last_sale_date:
        reasons.append(
            f"last sale {candidate.last_sale_date.isoformat()} is before {published.last_sale_date.isoformat()}"
        )
    if not reasons:
        return Order(False, False, f"not older than the published export {published.describe()}")
    return Order(
        True,
        False,
        f"{candidate.describe()} is older than the published export {published.describe()}: {' and '.join(reasons)}",
    )


def refusal(candidate: ExportDates, published: ExportDates, republish_hint: str) -> str:
    """The refusal paragraph: both exports, their dates, what stays, how to roll back on purpose."""
    order = compare(candidate, published)
    return (
        f"{order.summary}. An older export never replaces a newer one: nothing was changed and "
        f"{published.name} stays published. To roll back to {candidate.name} on purpose: {republish_hint}"
    )
