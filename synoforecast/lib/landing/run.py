"""Every cohort's landing for one snapshot, on both cores.

A cohort's landing (its replays, stored or made, then the landing at the cut-off with its
intervals) is a second or two of polars and numpy on one core. The cohorts are independent
except a `top_down_to` cohort, which needs its source's landing first: the cohorts nothing
depends on go to a worker process (lib/workers.py) while this process lands the sources
and the cohorts scaled onto them, in order. Each cohort runs the same function wherever it
runs, so the result is that of one process.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from synoforecast.lib.forecasting.cohorts import Cohort
from synoforecast.lib.landing import model as L
from synoforecast.lib.landing.cohorts import CohortLanding, land_cohort, landing_totals
from synoforecast.lib.landing.replay_store import stored_or_replayed

WORKER_PRELOAD = (__name__,)


def start_workers(n_jobs: int) -> None:
    """Start the worker now, so it imports while the caller reads the cohorts' inputs."""
    from synoforecast.lib import workers

    workers.start(n_jobs, WORKER_PRELOAD)


@dataclass(frozen=True)
class LandingJob:
    running: dt.date
    cutoff: dt.date
    replays_dir: Path
    fiscal_year_start_month: int = 1


def land_cohorts(
    inputs: dict[str, tuple[Cohort, L.CohortInputs]], job: LandingJob, n_jobs: int = 1
) -> dict[str, tuple[CohortLanding, bool]]:
    """(landing, whether its replays were reused) per cohort name, in the order of `inputs`."""
    sources = {cohort.top_down_to[0] for cohort, _ in inputs.values() if cohort.top_down_to}
    away = [
        name
        for name, (cohort, _) in inputs.items()
        if n_jobs > 1 and cohort.top_down_to is None and name not in sources
    ]
    here = [name for name in inputs if name not in away]
    jobs = [([inputs[n] for n in away], job)] if away else []
    from synoforecast.lib.workers import run_split

    done: dict[str, tuple[CohortLanding, bool]] = {}
    for part in run_split(_land_in_order, [*jobs, ([inputs[n] for n in here], job)], preload=WORKER_PRELOAD):
        done.update(part)
    return {name: done[name] for name in inputs}


def _land_in_order(
    cohorts: list[tuple[Cohort, L.CohortInputs]], job: LandingJob
) -> dict[str, tuple[CohortLanding, bool]]:
    done: dict[str, tuple[CohortLanding, bool]] = {}
    for cohort, inputs in cohorts:
        totals = replay_totals = None
        if cohort.top_down_to is not None:  # its source comes earlier in the same list
            totals, replay_totals = landing_totals(done[cohort.top_down_to[0]][0], cohort.top_down_to[1])
        replayed, reused = stored_or_replayed(job.replays_dir, cohort, inputs, replay_totals)
        done[cohort.name] = (
            land_cohort(
                cohort,
                inputs,
                job.running,
                job.cutoff,
                totals,
                replay_totals,
                job.fiscal_year_start_month,
                replayed=replayed,
            ),
            reused,
        )
    return done
