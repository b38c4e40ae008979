"""Restatements of past quarters, measured: what a new export says a published quarter was.

Each export is a full snapshot with corrections to past rows. For every complete quarter
that the published export held and the new export publishes again, per dated sheet and
metric (SVR-RM and Consumer: units, revenue, lines; C2: seats, mrr, lines), this compares
the published value with the new one. Both sides are per-quarter totals of the parsed
sheet (the same definition raw holds), kept in each snapshot's manifest
(`quarter_totals`): measuring costs one group-by over the new frame, never a scan of raw.

Pure: polars only; lib/ingest/snapshots.py stores the rows in ops.restatements.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import polars as pl

from synoforecast.lib.ingest.quality import Finding
from synoforecast.lib.quarters import parse_key, quarter_label

# table -> (sheet, {metric: column}); every sheet also counts its lines
METRICS: dict[str, tuple[str, dict[str, str]]] = {
    "svr_rm": ("SVR-RM", {"units": "units", "revenue": "revenue_usd"}),
    "consumer": ("Consumer", {"units": "units", "revenue": "revenue_usd"}),
    "c2": ("C2", {"seats": "seats", "mrr": "mrr_usd"}),
}
MONEY = {"revenue", "mrr"}


def quarter_totals(table: str, frame: pl.DataFrame | None) -> dict[str, dict[str, float | int]]:
    """{quarter key: {metric: total}} of one parsed dated sheet (money rounded to cents)."""
    if table not in METRICS or frame is None or not frame.height:
        return {}
    columns = METRICS[table][1]
    grouped = frame.group_by("quarter_start").agg(
        *[pl.col(c).sum().alias(m) for m, c in columns.items()], pl.len().alias("lines")
    )
    out = {}
    for row in grouped.iter_rows(named=True):
        out[row["quarter_start"].isoformat()] = {
            m: round(float(row[m]), 2) if m in MONEY else int(row[m]) for m in [*columns, "lines"]
        }
    return out


@dataclass(frozen=True)
class Restatement:
    sheet: str
    quarter: str  # quarter key, YYYY-MM-DD
    quarter_label: str  # 2025-Q2
    metric: str
    before: float  # the published value
    after: float  # this export's value
    change: float
    share: float | None  # change / |before|; None when before is 0

    @property
    def size(self) -> float:
        """How large, for ordering: the share's magnitude (a value out of nothing counts as infinite)."""
        if self.share is None:
            return float("inf") if self.change else 0.0
        return abs(self.share)

    def describe(self) -> str:
        money = self.metric in MONEY
        fmt = (lambda v: f"{v:,.2f}") if money else (lambda v: f"{v:,.0f}")
        share = "new" if self.share is None else f"{self.share:+.1%}"
        return (
            f"{self.sheet} {self.quarter_label} {self.metric}: {fmt(self.before)} -> "
            f"{fmt(self.after)} ({'+' if self.change >= 0 else ''}{fmt(self.change)}, {share})"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def measure(
    published: dict[str, dict], current: dict[str, dict], quarters: dict[str, list[str]], fiscal_start_month: int = 1
) -> list[Restatement]:
    """Every (sheet, quarter, metric) of `quarters` (table -> keys published before and again now):
    published total, new total, change and share. A quarter with no lines on one side is 0 there."""
    rows = []
    for table, keys in sorted(quarters.items()):
        if table not in METRICS:
            continue
        sheet, columns = METRICS[table]
        for key in sorted(keys):
            named = quarter_label(parse_key(key), fiscal_start_month)
            old = published.get(table, {}).get(key, {})
            new = current.get(table, {}).get(key, {})
            for metric in [*columns, "lines"]:
                before, after = old.get(metric, 0), new.get(metric, 0)
                change = round(after - before, 2)
                share = round(change / abs(before), 6) if before else None
                rows.append(Restatement(sheet, key, named, metric, before, after, change, share))
    return rows


def comparable_quarters(published: dict, current: dict) -> dict[str, list[str]]:
    """Per dated table, the complete quarters the published export held and this export publishes
    again (each manifest's `expected_fingerprints` for raw.<table>): only those can be restated."""

    def held(manifest: dict, table: str) -> set[str]:
        expected = manifest.get("expected_fingerprints", {}).get(f"raw.{table}")
        if expected is not None:
            return set(expected)
        incomplete = set(manifest.get("fingerprints", {}).get("incomplete", {}).get(table, []))
        return set(manifest.get("complete_quarter_keys", [])) - incomplete

    return {t: sorted(held(published, t) & held(current, t)) for t in METRICS}


def material(rows: list[Restatement], threshold: float) -> list[Restatement]:
    """The restatements above `threshold` (a share), largest first."""
    picked = [r for r in rows if r.change and r.size > threshold]
    return sorted(picked, key=lambda r: (-r.size, r.sheet, r.quarter, r.metric))


def finding(recorded: dict | None, warn_share: float) -> Finding:
    """The snapshot_restatements check: passes unless a published quarter moved by more than
    `warn_share`. `recorded` is the manifest's `restatements` entry."""
    if not recorded or recorded.get("baseline") is None:
        return Finding(
            True,
            "nothing restated: no export was published before this one",
            {"restatements": {"baseline": None, "warn_share": warn_share}},
        )
    rows = [Restatement(**r) for r in recorded.get("rows", [])]
    over = material(rows, warn_share)
    changed = [r for r in rows if r.change]
    meta = {
        "restatements": {"baseline": recorded["baseline"], "warn_share": warn_share, "restated_values": len(changed)},
        "above_warn_share": [r.describe() for r in over[:20]],
    }  # each a JSON value: the check's metadata
    if over:
        return Finding(
            False,
            f"{len(over)} published value(s) restated by more than {warn_share:.0%}, largest {over[0].describe()}",
            meta,
        )
    if changed:
        return Finding(True, f"{len(changed)} published value(s) restated, none by more than {warn_share:.0%}", meta)
    return Finding(True, "no published quarter restated", meta)
