"""One rolling pass: each candidate fitted once per series and origin, shared by every as-of quarter.

A partition as of Q backtests its combination on the last ``w`` origins before Q and fits
its forecast at Q, so neighbouring partitions share all but one origin: computed partition
by partition, a run over 23 quarters refits every candidate about ``w + 1`` times per origin.
Here a fit is addressed by what it was made from (the series' values up to the origin, as a
content hash, and the model's spec with the statsforecast version), so a run makes it once;
with a persistent store (``load``/``save``) a later run reuses it, and a new export whose
older quarters are unchanged refits only the origins whose history changed.  Invalidation is
by content, never by time: a changed value, model setting or statsforecast release changes
the key.

The models ignore dates (no exogenous regressors; seasonal lags count positions from the end),
so equal values give equal fits whatever series they belong to.

Where the fits run: this process and ``n_jobs - 1`` local worker processes (lib/workers.py), or,
given a Dask scheduler address (the ``dask_scheduler`` setting), the workers of that
dask.distributed cluster: the same :func:`fit_prefixes` on the same batches, submitted as
futures, so the numbers are those of the local path (to the ~1e-14 a batch's composition moves).
An unreachable scheduler is an error naming its address, never a quiet fall-back to local.
"""

from __future__ import annotations

import hashlib
import importlib
import threading
import warnings
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

CACHE_VERSION = "1"  # bump when a fit's meaning changes without its spec changing

PARALLEL_MIN_FITS = 200  # fewer fits than this take less time than the hand-over to a worker
WORKER_PRELOAD = ("statsforecast.models", "synoforecast.lib.forecasting.rolling")
DASK_CONNECT_TIMEOUT = "10s"  # how long an unreachable scheduler may keep a step waiting before it fails
DASK_FITS_PER_TASK = 100  # a Dask task's fits at least (fewer cost more in hand-over than in fitting)
DASK_TASKS_PER_THREAD = 2  # per model: tasks enough for a worker that finishes early to take over another's

Spec = tuple[type, dict]
Key = tuple[str, str]  # (model key, prefix key)


@lru_cache(maxsize=1)
def _statsforecast_release() -> str:
    from importlib.metadata import version

    return version("statsforecast")


def model_key(spec: Spec) -> str:
    """A model's identity in the store: class, arguments, statsforecast release, cache version."""
    cls, kwargs = spec
    args = ",".join(f"{k}={kwargs[k]!r}" for k in sorted(kwargs))
    return f"{cls.__name__}({args})/statsforecast-{_statsforecast_release()}/v{CACHE_VERSION}"


def model_name(spec: Spec) -> str:
    """The column statsforecast gives the model's predictions (its alias)."""
    cls, kwargs = spec
    return repr(cls(**kwargs))


def prefix_key(y: np.ndarray) -> str:
    """Content hash of the values a fit is made from."""
    return hashlib.blake2b(np.ascontiguousarray(y, dtype="<f8").tobytes(), digest_size=16).hexdigest()


class DaskUnreachable(RuntimeError):
    """The configured Dask scheduler cannot be reached (or dask[distributed] is not installed)."""


_dask_clients: dict[str, Any] = {}


def dask_client(address: str):
    """A dask.distributed ``Client`` of the scheduler at ``address``, kept for this process (a
    run's cohorts share it) and not made the default client (nothing else is sent to it)."""
    client = _dask_clients.get(address)
    if client is not None and client.status == "running":
        return client
    try:
        from distributed import Client
    except ImportError:
        raise DaskUnreachable(
            f"dask scheduler {address} is configured but dask[distributed] is not installed (the dask extra)"
        ) from None
    try:
        client = Client(address, timeout=DASK_CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DaskUnreachable(f"dask scheduler {address} is unreachable: {reason}") from None
    _dask_clients[address] = client
    return client


class OneStepPredictions:
    """Content-addressed one-step-ahead predictions, ``(model key, prefix key) -> yhat``.

    ``load(keys) -> {key: yhat}`` and ``save({key: yhat})`` connect a persistent store (the
    warehouse's ``ops.forecast_fits``); without them the store lives for one run.  ``fits``,
    ``loaded`` and ``reused`` count the fits made, those found in the persistent store and the
    requests answered by a fit another request (another as-of quarter, another series with the
    same values) already asked for.  ``n_jobs`` processes make the fits: this one and
    ``n_jobs - 1`` workers (a series' fit does not depend on the others it is made with, so
    the values are the same to the last bits the batch composition moves, ~1e-14); with
    ``dask_scheduler`` (an address such as ``tcp://dask-scheduler:8786``) the cluster's
    workers make them instead, connected to here (:class:`DaskUnreachable` if it cannot be)."""

    def __init__(
        self,
        freq: str = "QS",
        n_jobs: int = 1,
        load: Callable[[list[Key]], dict[Key, float]] | None = None,
        save: Callable[[dict[Key, float]], None] | None = None,
        dask_scheduler: str | None = None,
    ):
        self.freq, self.n_jobs = freq, n_jobs
        self.dask_scheduler = dask_scheduler or None
        self._dask = dask_client(self.dask_scheduler) if self.dask_scheduler else None
        if self._dask is None:
            from synoforecast.lib import workers

            workers.start(n_jobs, WORKER_PRELOAD)  # they import statsforecast while the caller prepares the series
        self._load, self._save = load, save
        self.values: dict[Key, float] = {}
        self.fits = self.loaded = self.reused = 0

    def lookup_only(self) -> OneStepPredictions:
        """The fits made so far, without the persistent store or workers: what another process
        needs to assemble the same frames (picklable; a fit it lacks is made where it runs)."""
        copy = OneStepPredictions(self.freq)
        copy.values = dict(self.values)
        return copy

    @staticmethod
    def _prefixes(df: pd.DataFrame, w: int):
        """Per series (in unique_id order): id, ds, y and the prefix keys of its last ``w``
        origins and of the forecast origin (prefix lengths n-w .. n)."""
        for uid, g in df.groupby("unique_id", sort=True):
            y = g["y"].to_numpy(dtype="float64")
            ds = g["ds"].to_numpy()
            n = len(y)
            yield str(uid), ds, y, [(length, prefix_key(y[:length])) for length in range(n - w, n + 1)]

    def prefetch(self, jobs: Iterable[tuple[pd.DataFrame, int, list[Spec]]], _count: bool = True) -> None:
        """Make sure every fit the jobs (band frame, windows, candidate specs) need is known:
        from memory, else the persistent store, else fitted now, one statsforecast call per model."""
        wanted: dict[str, tuple[Spec, dict[str, tuple[np.ndarray, np.ndarray]]]] = {}
        for df, w, specs in jobs:
            keys = [(model_key(spec), spec) for spec in specs]
            for _, ds, y, prefixes in self._prefixes(df, w):
                for length, pk in prefixes:
                    for mk, spec in keys:
                        by_prefix = wanted.setdefault(mk, (spec, {}))[1]
                        if (mk, pk) in self.values or pk in by_prefix:
                            self.reused += _count
                            continue
                        by_prefix[pk] = (ds[:length], y[:length])
        pending = [(mk, pk) for mk, (_, by_prefix) in wanted.items() for pk in by_prefix]
        if not pending:
            return
        if self._load is not None:
            found = self._load(pending)
            self.values.update(found)
            self.loaded += len(found)
        todo = []
        for mk, (spec, by_prefix) in wanted.items():
            missing = {pk: v for pk, v in by_prefix.items() if (mk, pk) not in self.values}
            if missing:
                todo.append((mk, spec, missing))
        made: dict[Key, float] = {}
        if self._dask is not None:
            made = self._fit_on_dask(todo)
        else:
            for mk, spec, missing in todo:
                made.update(self._fit(mk, spec, missing))
        self.values.update(made)
        self.fits += len(made)
        if made and self._save is not None:
            self._save(made)

    def _fit(self, mk: str, spec: Spec, prefixes: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[Key, float]:
        """One model's fits of every prefix; with ``n_jobs > 1`` and enough of them, split over
        worker processes (lib/workers.py) and this one, balanced by the values to fit."""
        parts = balanced_parts(prefixes, self.n_jobs) if len(prefixes) >= PARALLEL_MIN_FITS else [prefixes]
        from synoforecast.lib.workers import run_split

        fitted: dict[str, float] = {}
        for part in run_split(fit_prefixes, [(spec, part, self.freq) for part in parts], preload=WORKER_PRELOAD):
            fitted.update(part)
        return {(mk, pk): fitted[pk] for pk in prefixes}

    def _fit_on_dask(self, todo: list[tuple[str, Spec, dict]]) -> dict[Key, float]:
        """Every model's fits at once on the Dask cluster: each model's prefixes in balanced
        parts (:func:`balanced_parts`, as locally), one task of :func:`fit_prefixes` per part."""
        threads = max(1, sum(self._dask.nthreads().values()))
        tasks = []
        for mk, spec, prefixes in todo:
            n = min(threads * DASK_TASKS_PER_THREAD, max(1, len(prefixes) // DASK_FITS_PER_TASK))
            tasks += [(mk, spec, part) for part in balanced_parts(prefixes, n)]
        futures = [self._dask.submit(fit_prefixes, spec, part, self.freq, pure=False) for _, spec, part in tasks]
        made: dict[Key, float] = {}
        for (mk, _, _), fitted in zip(tasks, self._dask.gather(futures)):
            made.update({(mk, pk): v for pk, v in fitted.items()})
        return made

    def frames(self, df: pd.DataFrame, w: int, specs: list[Spec], freq: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """statsforecast's ``cross_validation(h=1, n_windows=w, step_size=1)`` and
        ``forecast(h=1)`` frames for a band, assembled from the store (same rows, same order)."""
        self.prefetch([(df, w, specs)], _count=False)
        keys = [(model_key(spec), model_name(spec)) for spec in specs]
        cv_rows, fc_rows = [], []
        for uid, ds, y, prefixes in self._prefixes(df, w):
            for length, pk in prefixes:
                preds = {name: self.values[(mk, pk)] for mk, name in keys}
                if length < len(y):
                    cv_rows.append(
                        {"unique_id": uid, "ds": ds[length], "cutoff": ds[length - 1], "y": y[length], **preds}
                    )
                else:
                    nxt = pd.date_range(pd.Timestamp(ds[-1]), periods=2, freq=freq)[1]
                    fc_rows.append({"unique_id": uid, "ds": nxt, **preds})
        names = [name for _, name in keys]
        cv = pd.DataFrame(cv_rows, columns=["unique_id", "ds", "cutoff", "y", *names])
        fc = pd.DataFrame(fc_rows, columns=["unique_id", "ds", *names])
        for frame, cols in ((cv, ("ds", "cutoff")), (fc, ("ds",))):
            for col in cols:
                frame[col] = pd.to_datetime(frame[col]).astype("datetime64[ns]")
        return cv, fc


def warm_up(n_jobs: int) -> threading.Thread:
    """Start the fit workers and import statsforecast here, on a thread, for forecasts that come
    next: the dbt step calls this before it waits ~10 s on dbt, so the first forecast step
    does not spend ~3 s importing (and its workers another ~2.5 s) with the second core idle."""
    from synoforecast.lib import workers

    workers.start(n_jobs, WORKER_PRELOAD)
    thread = threading.Thread(
        target=importlib.import_module,
        args=("synoforecast.lib.forecasting.engine",),
        name="import-statsforecast",
        daemon=True,
    )
    thread.start()
    return thread


def balanced_parts(prefixes: dict[str, tuple[np.ndarray, np.ndarray]], n: int) -> list[dict]:
    """`prefixes` in at most `n` parts of about equal total length (a fit's cost grows with it)."""
    parts: list[dict] = [{} for _ in range(max(1, n))]
    loads = [0] * len(parts)
    for pk, value in sorted(prefixes.items(), key=lambda item: -len(item[1][1])):
        i = loads.index(min(loads))
        parts[i][pk] = value
        loads[i] += len(value[1])
    return [part for part in parts if part]


def fit_prefixes(spec: Spec, prefixes: dict[str, tuple[np.ndarray, np.ndarray]], freq: str) -> dict[str, float]:
    """The model's one-step-ahead prediction after each prefix (run here or in a worker)."""
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    frame = pd.DataFrame(
        {
            "unique_id": np.concatenate([np.full(len(y), pk, dtype=object) for pk, (_, y) in prefixes.items()]),
            "ds": np.concatenate([ds for ds, _ in prefixes.values()]),
            "y": np.concatenate([y for _, y in prefixes.values()]),
        }
    )
    cls, kwargs = spec
    sf = StatsForecast(models=[cls(**kwargs)], freq=freq, n_jobs=1, fallback_model=Naive())
    with warnings.catch_warnings():  # ETS divide-by-zero notes on tiny or perfect fits
        warnings.simplefilter("ignore", RuntimeWarning)
        fc = sf.forecast(df=frame, h=1)
    column = model_name(spec)
    return {str(pk): float(v) for pk, v in zip(fc["unique_id"], fc[column].to_numpy(dtype="float64"))}
