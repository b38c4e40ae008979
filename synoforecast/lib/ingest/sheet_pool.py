"""The sheet loop of `read_workbook`: on a large workbook SVR-RM is read in a second process.

One process cannot use both cores: calamine's parse of SVR-RM (10M cells, ~10 s at 1M rows)
and polars' validation contend for the GIL-free parts only, so the large sheets used to run
one after the other. A worker process (`lib/workers.py`) reads SVR-RM (its own calamine pass, the same
`judge_sheet`) while this process reads every other sheet, the next one parsed on a thread
while the current one is validated. Both paths run the same code on the same cells, so the
frames are identical (synoforecast_tests/unit/lib/ingest/test_sheet_pool.py), and a refusal is the
one the serial reader would give: the first refused sheet in reading order.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fastexcel

from synoforecast.lib.ingest import workbook
from synoforecast.lib.ingest.contract import SheetSpec
from synoforecast.lib.ingest.workbook import SheetOptions, SheetRead, WorkbookRefused, judge_sheet
from synoforecast.lib.workers import WorkerProcess

PARALLEL_MIN_BYTES = 8_000_000  # ~150k SVR-RM rows: below it the worker's start-up (~1 s) costs more than it saves
WORKER_SHEET = "SVR-RM"
Outcome = SheetRead | WorkbookRefused


def _is_reference(spec: SheetSpec) -> bool:
    return not (spec.is_sales or spec.date_field is not None)


def read_sheets(
    path: Path,
    reader: fastexcel.ExcelReader,
    order: list[tuple[str, SheetSpec]],
    options: SheetOptions,
    parallel: bool | None = None,
) -> dict[str, SheetRead]:
    """Every matched sheet read and judged, in `order` (reference sheets first: they extend
    the known models and countries); raises the first refusal in that order."""
    if parallel is None:
        parallel = path.stat().st_size >= PARALLEL_MIN_BYTES
    away = next((item for item in order if parallel and item[1].name == WORKER_SHEET), None)
    if away is None:
        return _raise_first(order, _read_here(path, reader, order, options))
    worker = WorkerProcess(preload=(__name__,))  # imports polars, calamine while the reference sheets are read here
    try:
        references = [item for item in order if _is_reference(item[1])]
        outcomes = _read_here(path, reader, references, options)
        if any(isinstance(o, WorkbookRefused) for o in outcomes.values()):
            return _raise_first(order, outcomes)
        worker.send(read_sheet_or_refusal, path, away[0], away[1], options)
        rest = [item for item in order if not _is_reference(item[1]) and item is not away]
        outcomes.update(_read_here(path, reader, rest, options))
        _digest_dated(outcomes.values())  # while the worker still reads SVR-RM
        outcomes[away[1].name] = worker.result()
        return _raise_first(order, outcomes)
    finally:
        worker.close(kill=True)  # a refusal elsewhere: its result is not needed


def read_sheet_alone(path: Path, sheet_name: str, spec: SheetSpec, options: SheetOptions) -> SheetRead:
    """One sheet with a reader of its own (runs in the worker process)."""
    reader = fastexcel.read_excel(str(path))
    result = judge_sheet(path, sheet_name, spec, lambda: workbook._load_cells(reader, sheet_name), options)
    _digest_dated([result])  # here, on the worker's core: they travel back with the frame
    return result


def _digest_dated(outcomes) -> None:
    """Compute (and so cache) the per-quarter digests the snapshot needs next."""
    for outcome in outcomes:
        if isinstance(outcome, SheetRead) and outcome.spec.date_field:
            outcome.quarter_digests()


def read_sheet_or_refusal(path: Path, sheet_name: str, spec: SheetSpec, options: SheetOptions) -> Outcome:
    """The worker's job: the sheet, or its refusal as a value (an error is a failure)."""
    try:
        return read_sheet_alone(path, sheet_name, spec, options)
    except WorkbookRefused as exc:
        return exc


def _read_here(
    path: Path, reader: fastexcel.ExcelReader, items: list[tuple[str, SheetSpec]], options: SheetOptions
) -> dict[str, Outcome]:
    """Sheets in this process, until the first refusal (kept as the outcome of its sheet).

    calamine releases the GIL: the next sheet is parsed on a worker thread while this one is
    validated (one sheet ahead at most, so memory holds two sheets, never the workbook)."""
    outcomes: dict[str, Outcome] = {}
    prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workbook-prefetch")
    try:
        pending = prefetch.submit(workbook._load_cells, reader, items[0][0]) if items else None
        for position, (sheet_name, spec) in enumerate(items):

            def load(position=position):
                nonlocal pending
                cells = pending.result()
                pending = (
                    prefetch.submit(workbook._load_cells, reader, items[position + 1][0])
                    if position + 1 < len(items)
                    else None
                )
                return cells

            try:
                result = judge_sheet(path, sheet_name, spec, load, options)
            except WorkbookRefused as exc:
                outcomes[spec.name] = exc
                break
            outcomes[spec.name] = result
            if spec.table in ("device_bays", "region_map"):
                options.reference.extend(
                    result.frame if spec.table == "device_bays" else None,
                    result.frame if spec.table == "region_map" else None,
                )
    finally:  # a refusal returns at once instead of waiting for the sheet being prefetched
        prefetch.shutdown(wait=False, cancel_futures=True)
    return outcomes


def _raise_first(order: list[tuple[str, SheetSpec]], outcomes: dict[str, Outcome]) -> dict[str, SheetRead]:
    """The sheets read, or the refusal the serial reader would have met first."""
    sheets: dict[str, SheetRead] = {}
    for _, spec in order:
        outcome = outcomes.get(spec.name)
        if isinstance(outcome, WorkbookRefused):
            raise outcome
        if outcome is not None:
            sheets[spec.name] = outcome
    return sheets
