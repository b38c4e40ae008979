"""Snapshot quality rules (pure): change detection and the findings behind the snapshot checks.

Each rule reads snapshot manifests (see lib/snapshots.py) and returns a Finding; the
Dagster checks in defs/ingestion/checks.py only fetch the manifests and report it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from synoforecast.lib.contract import SHEETS


@dataclass(frozen=True)
class Finding:
    passed: bool
    summary: str
    metadata: dict = field(default_factory=dict)


def changed_quarters(current: dict[str, str], baseline: dict[str, str] | None, complete_keys: list[str]) -> list[str]:
    """Complete quarters whose content hash differs from the last published snapshot (all
    of them when nothing was published yet). A quarter new to this export counts as changed."""
    if baseline is None:
        return list(complete_keys)
    return [q for q in complete_keys if current.get(q) != baseline.get(q)]


def row_count_delta(current: dict, baseline: dict | None, max_pct: float) -> Finding:
    """Per-sheet rows loaded against the previous published snapshot; warn beyond max_pct."""
    if baseline is None:
        return Finding(True, "no previous published snapshot to compare with")
    deltas, over = {}, []
    for sheet, stats in current["sheets"].items():
        before = baseline["sheets"].get(sheet, {}).get("rows_loaded")
        if not before:
            continue
        pct = round((stats["rows_loaded"] - before) / before * 100, 2)
        deltas[sheet] = {"before": before, "now": stats["rows_loaded"], "delta_pct": pct}
        if abs(pct) > max_pct:
            over.append(f"{sheet} {pct:+.1f}%")
    summary = f"row counts moved more than {max_pct:g}%: {', '.join(over)}" if over else "row counts within range"
    return Finding(not over, summary, {"deltas": deltas, "baseline": baseline["sha256"]})


def quarantine(current: dict) -> Finding:
    """Rows that could not be parsed (below the refusal share) are kept out and listed."""
    rows = {s: v["rows_quarantined"] for s, v in current["sheets"].items() if v["rows_quarantined"]}
    cells = {s: v.get("quarantined_cells", []) for s, v in current["sheets"].items() if v["rows_quarantined"]}
    summary = f"{sum(rows.values())} rows quarantined: {rows}" if rows else "no quarantined rows"
    return Finding(not rows, summary, {"rows": rows, "first_cells": cells})


def unknown_references(current: dict) -> Finding:
    """Models missing from Device Bays and countries missing from the region map: kept, flagged."""
    found = {s: {"unknown_models": v["unknown_models"], "unknown_countries": v.get("unknown_countries", 0)}
             for s, v in current["sheets"].items() if v["unknown_models"] or v.get("unknown_countries")}
    summary = f"unknown models/countries: {found}" if found else "every model and country is known"
    return Finding(not found, summary, {"sheets": found})


def duplicate_share(current: dict, max_share: float) -> Finding:
    shares = {s: round(v["duplicates_removed"] / v["rows_read"], 4)
              for s, v in current["sheets"].items() if v["rows_read"]}
    over = {s: x for s, x in shares.items() if x > max_share}
    summary = f"duplicate share above {max_share:.1%}: {over}" if over else "duplicate share within range"
    return Finding(not over, summary, {"shares": shares})


def null_share(current: dict, max_share: float) -> Finding:
    """Optional columns mostly blank (e.g. Region or Tier dropped from the export); columns the
    contract expects blank on a sheet (Consumer.tier: consumer models have no tier) are not flagged."""
    expected_blank = {(spec.name, col) for spec in SHEETS for col in spec.blank_by_design}
    over = {f"{s}.{col}": x for s, v in current["sheets"].items()
            for col, x in v.get("null_shares", {}).items() if x > max_share and (s, col) not in expected_blank}
    summary = f"columns mostly blank: {over}" if over else "optional columns filled"
    return Finding(not over, summary, {"over": over})
