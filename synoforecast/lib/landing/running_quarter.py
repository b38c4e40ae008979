"""The quarter in progress of a snapshot: which it is, up to which day, and its rows (pure)."""

from __future__ import annotations

import datetime as dt

from synoforecast.lib.quarters import quarter_label, quarter_start


class NoQuarterInProgress(ValueError):
    """The snapshot holds no rows of a quarter that is still running at its export."""


def quarter_in_progress(manifest: dict, fiscal_year_start_month: int = 1) -> tuple[dt.date, dt.date]:
    """(quarter start, cut-off) of the snapshot's running quarter: the quarter of its export day
    (the file's modification date, as for complete quarters), when the snapshot has rows in it
    and the quarter is not complete. The cut-off is the export day: sales up to and including
    it are the quarter-to-date actual."""
    cutoff = dt.datetime.fromisoformat(manifest["file_mtime"]).date()
    running = quarter_start(cutoff, fiscal_year_start_month)
    quarters = set(manifest.get("quarters") or [])
    complete = set(manifest.get("complete_quarter_keys") or [])
    name = manifest.get("file", "the snapshot")
    wanted = quarter_label(running, fiscal_year_start_month)
    if running.isoformat() in complete:
        raise NoQuarterInProgress(f"{name}: {wanted} is complete in this export: no quarter is in progress")
    if running.isoformat() not in quarters:
        raise NoQuarterInProgress(
            f"{name} (exported {cutoff.isoformat()}) holds no rows of {wanted}, "
            "the quarter in progress: no landing to make"
        )
    return running, cutoff
