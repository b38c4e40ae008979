"""The landing's replays kept between runs, as parquet keyed by their content hash.

Replaying every complete quarter week by week is most of a landing run, and the weekly
export changes only the quarter in progress: its replays are those of the last export. A
folder per cohort holds `<key>/` with the three frames of :class:`~synoforecast.lib.landing.cohorts.Replayed`;
the key (:func:`~synoforecast.lib.landing.cohorts.replay_key`) is a hash of everything the
replays are computed from, so a revised quarter, a new forecast or changed code is a new key
and never a stale hit. Written to a temporary folder and renamed, so a killed run leaves
no half entry; the newest few keys per cohort are kept.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import polars as pl

from synoforecast.lib.forecasting.cohorts import Cohort
from synoforecast.lib.landing import model as L
from synoforecast.lib.landing.cohorts import Replayed, replay_cohort, replay_key

FRAMES = ("crossfitted", "reconciled", "honest")
KEEP_PER_COHORT = 4


def _entry(folder: Path, cohort: str, key: str) -> Path:
    return folder / cohort / key


def load_replays(folder: Path, cohort: str, key: str) -> Replayed | None:
    """The replays stored under `key`, or None (never stored, or unreadable: recompute)."""
    entry = _entry(folder, cohort, key)
    try:
        frames = {name: pl.read_parquet(entry / f"{name}.parquet") for name in FRAMES}
    except (OSError, pl.exceptions.PolarsError):
        return None
    os.utime(entry)  # most recently used: kept longest
    return Replayed(**frames)


def save_replays(folder: Path, cohort: str, key: str, replayed: Replayed, keep: int = KEEP_PER_COHORT) -> None:
    """Store `replayed` under `key` atomically, then drop all but the `keep` newest keys."""
    entry = _entry(folder, cohort, key)
    if entry.exists():
        return
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for name in FRAMES:
            getattr(replayed, name).write_parquet(tmp / f"{name}.parquet")
        os.replace(tmp, entry)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not entry.exists():
            raise
        return  # another run stored the same key first: same content
    entries = sorted(
        (p for p in entry.parent.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def stored_or_replayed(
    folder: Path, cohort: Cohort, inputs: L.CohortInputs, replay_totals: pl.DataFrame | None = None
) -> tuple[Replayed, bool]:
    """(the cohort's replays, whether they were read back): from the store when an earlier
    export had the same content, else replayed now and stored for the next export."""
    key = replay_key(cohort, inputs, replay_totals)
    stored = load_replays(folder, cohort.name, key)
    if stored is not None:
        return stored, True
    replayed = replay_cohort(cohort, inputs, replay_totals)
    save_replays(folder, cohort.name, key, replayed)
    return replayed, False
