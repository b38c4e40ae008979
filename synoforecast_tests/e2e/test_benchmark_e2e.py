"""`benchmarks/e2e.py --quick` runs as a CI smoke test: the whole `synoforecast ingest` twice
in a fresh project home, stage times read back from Dagster's run storage."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_e2e_quick_measures_every_stage_and_an_identical_reingest_runs_nothing(tmp_path):
    out = tmp_path / "e2e.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "e2e.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (size,) = json.loads(out.read_text())["results"]
    first, again = size["first"], size["reingest"]
    assert first["partitions"] == 7 and first["runs"] == 3  # snapshot, pipeline, landing of the quarter in progress
    for stage in ("snapshot", "sheets", "dbt", "svr_rm_overall", "c2_scorecard", "evaluation", "activation", "landing"):
        assert first["stages"][stage] > 0, stage
    assert first["peak_rss_mb"] > 100
    assert again["runs"] == 0 and again["partitions"] == 0 and again["stages"] == {}
    assert again["wall_s"] < first["wall_s"]
