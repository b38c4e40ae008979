"""Read a sale-out workbook into typed polars frames, or refuse it with a precise reason.

Reading uses calamine (fastexcel), ~25x faster than openpyxl on large exports. Every
refusal names the file and, where it applies, the sheet, the column or the cells
(`SVR-RM!B12`), so sales operations can fix the export without asking anyone.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import os
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import fastexcel
import polars as pl

from synoforecast.lib.ingest import xlsx_parts
from synoforecast.lib.ingest.contract import (
    DECIMAL_LIMIT,
    INT_RANGE,
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    SHEETS,
    WAREHOUSE_TYPES,
    AliasTable,
    ColumnSpec,
    SheetSpec,
    match_sheet,
    normalise_name,
)
from synoforecast.lib.ingest.date_text import DAY_FIRST, read_dates
from synoforecast.lib.ingest.fingerprint import frame_digest, grouped_digests
from synoforecast.lib.ingest.inbox import file_sha256 as sha256_file
from synoforecast.lib.ingest.number_text import read_numbers
from synoforecast.lib.ingest.xlsx_parts import Limits, PartsProblem, column_styles
from synoforecast.lib.quarters import complete_quarters, quarter_label, to_key

HEADER_SEARCH_ROWS = 30
TOTAL_MARKERS = {"total", "grand total", "subtotal", "sub total", "sum"}
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
MAX_CELLS_IN_ERROR = 10
EARLIEST_DATE = dt.date(2000, 1, 1)  # no sale-out line of the platform's products is older
DATE_MARGIN_DAYS = 0  # a sale cannot be dated after its export (the file's modification day, UTC)


class WorkbookRefused(ValueError):
    """The workbook cannot be ingested; `str(exc)` is the one-paragraph reason."""

    def __init__(
        self,
        file: str | os.PathLike,
        reason: str,
        *,
        sheet: str | None = None,
        column: str | None = None,
        cells: Iterable[str] = (),
    ):
        self.file = str(file)
        self.sheet, self.column, self.cells = sheet, column, list(cells)
        self.reason = reason
        super().__init__(f"{Path(file).name}: {reason}")

    def __reduce__(self):  # crosses the process boundary of the parallel reader intact
        return (_rebuild_refusal, (self.file, self.reason, self.sheet, self.column, tuple(self.cells)))


def _rebuild_refusal(file: str, reason: str, sheet: str | None, column: str | None, cells: tuple) -> WorkbookRefused:
    return WorkbookRefused(file, reason, sheet=sheet, column=column, cells=cells)


@dataclass
class Reference:
    """Known models and countries: the versioned dbt seeds, extended by the workbook's own sheets."""

    models: dict[str, str]  # casefolded -> canonical spelling
    model_tiers: dict[str, str | None]  # canonical -> tier
    countries: set[str]  # casefolded codes and names

    @classmethod
    def from_seeds(cls, seeds_dir: Path) -> Reference:
        models, tiers, countries = {}, {}, set()
        with open(seeds_dir / "device_bays.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                models[row["model"].strip().casefold()] = row["model"].strip()
                tiers[row["model"].strip()] = row["tier"].strip() or None
        with open(seeds_dir / "region_map.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                countries.update({row["country_code"].strip().casefold(), row["country_name"].strip().casefold()})
        return cls(models, tiers, countries)

    def extend(self, device_bays: pl.DataFrame | None, region_map: pl.DataFrame | None) -> None:
        if device_bays is not None:
            for model in device_bays["model"].drop_nulls().to_list():
                self.models.setdefault(model.casefold(), model)
        if region_map is not None:
            self.countries.update(c.casefold() for c in region_map["country"].drop_nulls().to_list())


@dataclass
class SheetRead:
    spec: SheetSpec
    frame: pl.DataFrame
    header_row: int  # 1-based Excel row of the header
    rows_read: int
    duplicates_removed: int
    quarantine: pl.DataFrame  # source_row, cell, reason
    unknown_models: int = 0
    unknown_countries: int = 0
    conventions: dict[str, str] = field(default_factory=dict)  # field -> how its text was read
    _digests: dict[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def rows_loaded(self) -> int:
        return self.frame.height

    @property
    def last_data_day(self) -> dt.date | None:
        """Last day the sheet has data for (a monthly sheet covers its last month to the end)."""
        field_name = self.spec.date_field
        if not field_name or not self.frame.height:
            return None
        last = self.frame[field_name].max()
        monthly = any(c.field == field_name and c.kind == "month" for c in self.spec.columns)
        return _month_end(last) if monthly else last

    def incomplete_quarters(self, export_day: dt.date) -> list[dt.date]:
        """This sheet's quarters not held in full: still running at the export, or its last
        quarter when the sheet's own data stops early (each sheet judged on its own dates)."""
        if "quarter_start" not in self.frame.columns or not self.frame.height:
            return []
        present = sorted(self.frame["quarter_start"].unique().to_list())
        complete = set(complete_quarters(present, export_day, self.last_data_day))
        return [q for q in present if q not in complete]

    def quarter_digests(self) -> dict[str, str]:
        """Canonical content digest per quarter (dated sheets) -- see lib/ingest/fingerprint.py. Computed
        once: the quarter hashes and the fingerprints both need it (1 s at 1M rows)."""
        if self._digests is None:
            self._digests = grouped_digests(self.frame, "quarter_start", _content_columns(self.frame))
        return dict(self._digests)

    def digest(self) -> str:
        """Canonical content digest of the whole sheet (reference sheets)."""
        return frame_digest(self.frame, _content_columns(self.frame))

    @property
    def rows_quarantined(self) -> int:
        return self.quarantine.height

    @property
    def quarters(self) -> list[str]:
        if "quarter_label" not in self.frame.columns:
            return []
        return sorted(self.frame["quarter_label"].unique().to_list())

    def totals(self) -> tuple[int, float]:
        units_col = "units" if "units" in self.frame.columns else "seats" if "seats" in self.frame.columns else None
        money_col = next((c for c in ("revenue_usd", "mrr_usd") if c in self.frame.columns), None)
        units = int(self.frame[units_col].sum()) if units_col and self.frame.height else 0
        money = round(float(self.frame[money_col].sum()), 2) if money_col and self.frame.height else 0.0
        return units, money

    def report(self) -> dict:
        units, revenue = self.totals()
        return {
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "duplicates_removed": self.duplicates_removed,
            "rows_quarantined": self.rows_quarantined,
            "unknown_models": self.unknown_models,
            "unknown_countries": self.unknown_countries,
            "units_total": units,
            "revenue_total": revenue,
            "quarters": self.quarters,
            "quarantined_cells": self.quarantine["cell"].head(MAX_CELLS_IN_ERROR).to_list(),
            "null_shares": self.null_shares(),
            "conventions": self.conventions,
        }

    def null_shares(self) -> dict[str, float]:
        """Share of blank cells per optional column (required ones are never blank here)."""
        if not self.frame.height:
            return {}
        return {
            c.field: round(self.frame[c.field].null_count() / self.frame.height, 4)
            for c in self.spec.columns
            if not c.required
        }


def _month_end(day: dt.date) -> dt.date:
    following = (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return following - dt.timedelta(days=1)


def _content_columns(frame: pl.DataFrame) -> list[str]:
    """What a row says (its position in the export, source_row, is not content)."""
    return [c for c in frame.columns if c not in ("source_row", "quarter_start", "quarter_label")]


@dataclass
class WorkbookRead:
    file: str
    sha256: str
    size_bytes: int
    mtime: dt.datetime
    sheets: dict[str, SheetRead]  # keyed by canonical sheet name
    ignored_sheets: list[str]
    read_seconds: float
    fiscal_start_month: int = 1
    quarter_hashes: dict[str, str] = field(default_factory=dict)
    hidden_sheets: list[str] = field(default_factory=list)  # names as in the workbook; also in ignored_sheets

    @property
    def quarters(self) -> list[dt.date]:
        found: set[dt.date] = set()
        for sheet in self.sheets.values():
            if "quarter_start" in sheet.frame.columns:
                found.update(sheet.frame["quarter_start"].unique().to_list())
        return sorted(found)

    @property
    def last_data_day(self) -> dt.date | None:
        frame = self.sheets["SVR-RM"].frame
        return frame["sale_date"].max() if frame.height else None

    @property
    def complete_quarters(self) -> list[dt.date]:
        """Quarters held in full: ended before the export (file mtime) and covered by data."""
        return complete_quarters(self.quarters, self.mtime.date(), self.last_data_day)

    def fingerprints(self) -> dict:
        """Per-sheet content digests the change detection compares with what is published:
        {"sheets": {table: {quarter_key: digest}}, "references": {table: digest},
        "incomplete": {table: [quarter_key]}}."""
        dated, references, incomplete = {}, {}, {}
        for sheet in self.sheets.values():
            if sheet.spec.date_field:
                dated[sheet.spec.table] = sheet.quarter_digests()
                incomplete[sheet.spec.table] = [to_key(q) for q in sheet.incomplete_quarters(self.mtime.date())]
            else:
                references[sheet.spec.table] = sheet.digest()
        return {"sheets": dated, "references": references, "incomplete": incomplete}

    def report(self) -> dict:
        return {
            "ok": True,
            "file": self.file,
            "sha256": self.sha256,
            "error": None,
            "sheets": {name: s.report() for name, s in self.sheets.items()},
            "ignored_sheets": self.ignored_sheets,
            "hidden_sheets": self.hidden_sheets,
            "complete_quarters": [quarter_label(q, self.fiscal_start_month) for q in self.complete_quarters],
        }


def _check_container(path: Path) -> None:
    if not path.exists():
        raise WorkbookRefused(path, "file not found")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == OLE2_MAGIC:
        blob = path.read_bytes()
        if "EncryptionInfo".encode("utf-16-le") in blob:
            raise WorkbookRefused(path, "the workbook is password-protected; export it again without a password")
        raise WorkbookRefused(
            path, "this is a legacy .xls workbook; save it as .xlsx (Excel Workbook) and drop it again"
        )
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        raise WorkbookRefused(
            path, f"not an Excel workbook: expected .xlsx or .xlsm, got '{path.suffix or 'no extension'}'"
        )
    if not zipfile.is_zipfile(path):
        raise WorkbookRefused(
            path,
            "the file is truncated or corrupt (not a complete .xlsx zip container); "
            "if it is still being copied, wait for the copy to finish",
        )


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _find_header(
    preview: pl.DataFrame, sheet_name: str, spec: SheetSpec, aliases: dict[str, ColumnSpec], file: Path
) -> int:
    """Index of the first row (from the top of the sheet) naming every required column."""
    required = {c.field for c in spec.required_columns}
    best_row, best_found, best_headers = None, set(), []
    for idx, row in enumerate(preview.iter_rows()):
        found = {aliases[normalise_name(v)].field for v in row if v is not None and normalise_name(v) in aliases}
        if required <= found:
            return idx
        if len(found) > len(best_found):
            best_row, best_found, best_headers = idx, found, [v for v in row if v is not None]
    missing = [c.header for c in spec.required_columns if c.field not in best_found]
    where = (
        f"the best candidate header row {best_row + 1} has"
        if best_row is not None
        else "no header row found in the first rows; found"
    )
    raise WorkbookRefused(
        file,
        f"sheet '{sheet_name}' is missing required column(s) {', '.join(repr(m) for m in missing)}; "
        f"{where} columns {best_headers}. Accepted spellings are listed in docs/workbook-contract.md.",
        sheet=sheet_name,
        column=missing[0] if missing else None,
    )


def _as_text(s: pl.Series) -> pl.Series:
    """Text as read (cells arrive stripped), runs of spaces collapsed: the rewrite runs only on a
    column that has such a run (rewriting every text column cost ~0.9 s at 1.5M rows)."""
    return s.str.replace_all(r"\s{2,}", " ") if s.str.contains(r"\s\s").any() else s


@dataclass
class _Cells:
    """Every cell of one sheet as text, and the Excel column index of each frame column."""

    frame: pl.DataFrame
    column_indexes: list[int]


def _load_cells(reader: fastexcel.ExcelReader, sheet_name: str) -> _Cells:
    """One calamine pass per sheet, every cell as text from row 1 (each load_sheet call parses
    the whole sheet, and typed inference would see the title/header rows anyway). The
    calamine sheet is dropped before returning: it holds a second copy of every cell."""
    sheet = reader.load_sheet(sheet_name, header_row=None, skip_rows=0, dtypes="string")
    cells = _Cells(sheet.to_polars(), [info.absolute_index for info in sheet.available_columns()])
    del sheet
    return cells


def _read_sheet(cells: _Cells, sheet_name: str, spec: SheetSpec, options: SheetOptions, file: Path) -> SheetRead:
    lookup = options.aliases.lookup(spec)
    everything = cells.frame
    header_idx = _find_header(everything.head(HEADER_SEARCH_ROWS), sheet_name, spec, lookup, file)
    header = everything.row(header_idx)
    raw = everything.slice(header_idx + 1)
    column_indexes = cells.column_indexes
    del everything, cells  # the slice keeps what is needed
    letters: dict[str, str] = {}
    columns: dict[str, pl.Series] = {}
    for (frame_name, absolute_index), name in zip(zip(raw.columns, column_indexes), header):
        col_spec = lookup.get(normalise_name(name)) if name is not None else None
        if col_spec is None or col_spec.field in columns:
            continue
        columns[col_spec.field] = raw[frame_name].alias(col_spec.field)
        letters[col_spec.field] = _column_letter(absolute_index)
    n = raw.height
    source_row = pl.Series("source_row", range(header_idx + 2, header_idx + 2 + n), dtype=pl.Int32)
    for col_spec in spec.columns:  # optional columns absent from the export
        columns.setdefault(col_spec.field, pl.Series(col_spec.field, [None] * n, dtype=pl.String))

    # strip every cell once (polars runs the columns in parallel), drop blank and total rows,
    # and only then parse: the expensive conversions never see rows that are not data
    strings = pl.DataFrame({c.field: columns[c.field].cast(pl.String) for c in spec.columns}).with_columns(
        pl.all().str.strip_chars()
    )
    label_fields = [c.field for c in spec.columns if c.kind in ("text", "id", "date", "month")]
    marker = {
        c: pl.col(c).str.to_lowercase().str.replace(r"[\s:.]+$", "").is_in(list(TOTAL_MARKERS)).fill_null(False)
        for c in label_fields
    }
    # a total row has no date of its own (blank, or the marker itself): a customer called
    # "Sum" on a dated line is data
    undated = (
        (pl.col(spec.date_field).is_null() | (pl.col(spec.date_field) == "") | marker[spec.date_field])
        if spec.date_field
        else pl.lit(True)
    )
    flags = strings.select(
        blank=pl.all_horizontal([pl.col(c).is_null() | (pl.col(c) == "") for c in strings.columns]),
        total=pl.any_horizontal(list(marker.values())) & undated,
    )
    keep = ~(flags["blank"] | flags["total"])
    raw_kept = strings.filter(keep)
    kept_rows = source_row.filter(keep)
    typed, conventions = _typed_columns(spec, raw_kept, kept_rows, letters, sheet_name, file, options)
    frame = pl.DataFrame({**typed, "source_row": kept_rows})
    rows_read = frame.height

    quarantine = _quarantine(spec, frame, raw_kept, letters, options)
    quarantine_mask = frame["source_row"].is_in(quarantine["source_row"].implode())
    frame = frame.filter(~quarantine_mask)

    ref = options.reference
    if spec.is_sales:
        canonical = frame["model"].str.to_lowercase().replace_strict(ref.models, default=None)
        frame = frame.with_columns(
            model=pl.coalesce(canonical, frame["model"]),
            tier=frame["tier"].str.to_uppercase(),
            is_unknown_model=canonical.is_null(),
            is_unknown_country=~frame["country"].str.to_lowercase().is_in(list(ref.countries)).fill_null(False),
        )
    frame, duplicates = _drop_duplicates(frame)

    if spec.date_field:
        qs = _quarter_starts(frame[spec.date_field], options.fiscal_start_month)
        labels = {q: quarter_label(q, options.fiscal_start_month) for q in qs.unique().drop_nulls().to_list()}
        frame = frame.with_columns(quarter_start=qs, quarter_label=qs.replace_strict(labels, return_dtype=pl.String))
    unknown_models = int(frame["is_unknown_model"].sum()) if spec.is_sales else 0
    unknown_countries = int(frame["is_unknown_country"].sum()) if spec.is_sales else 0
    return SheetRead(
        spec, frame, header_idx + 1, rows_read, duplicates, quarantine, unknown_models, unknown_countries, conventions
    )


def _drop_duplicates(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Drop repeats of an earlier row, comparing text case-insensitively; return the count.

    Exact, but cheap on large sheets: a 64-bit hash of each normalised row finds the few
    candidate rows first, and only those are compared column by column."""
    keys = [c for c in frame.columns if c != "source_row"]
    normalised = [pl.col(c).str.to_lowercase() if frame.schema[c] == pl.String else pl.col(c) for c in keys]
    row_hash = frame.select(pl.struct(normalised).hash(seed=0)).to_series()
    candidates = row_hash.is_duplicated()
    if not candidates.any():
        return frame, 0
    indexed = frame.with_row_index("__i")
    suspects = indexed.filter(candidates).with_columns(normalised)
    first = suspects.unique(subset=keys, keep="first", maintain_order=True)["__i"]
    repeated = suspects.filter(~pl.col("__i").is_in(first.implode()))["__i"]
    kept = indexed.filter(~pl.col("__i").is_in(repeated.implode())).drop("__i")
    return kept, repeated.len()


def _typed_columns(
    spec: SheetSpec,
    raw: pl.DataFrame,
    rows: pl.Series,
    letters: dict[str, str],
    sheet_name: str,
    file: Path,
    options: SheetOptions,
) -> tuple[dict[str, pl.Series], dict[str, str]]:
    """Every contract column parsed in the one convention its cells use (decimal separator,
    day/month order: how each was read goes to the manifest), ids as Excel displays them.
    A column whose unambiguous cells contradict each other refuses the workbook."""
    typed: dict[str, pl.Series] = {}
    conventions: dict[str, str] = {}
    for c in spec.columns:
        text = raw[c.field]
        if c.kind in ("date", "month"):
            dates = read_dates(text, options.date_order)
            _refuse_conflict(
                dates.conflict,
                c,
                text,
                rows,
                letters,
                sheet_name,
                file,
                "day/month orders",
                ("day first (its day is above 12)", "month first (its month is above 12)"),
            )
            typed[c.field] = dates.values.dt.truncate("1mo") if c.kind == "month" else dates.values
            conventions[c.field] = dates.describe()
        elif c.kind in ("int", "decimal"):
            numbers = read_numbers(text)
            if numbers.conflict or numbers.decimal != ".":  # a comma column: are its `1234.5` cells typed numbers?
                typed_cells = _typed_number_cells(letters.get(c.field), rows, sheet_name, file, options)
                if typed_cells is not None and typed_cells.any():
                    numbers = read_numbers(text, trusted=typed_cells)
            _refuse_conflict(
                numbers.conflict,
                c,
                text,
                rows,
                letters,
                sheet_name,
                file,
                "number conventions",
                ("written with a decimal point", "written with a decimal comma"),
            )
            typed[c.field] = _whole_numbers(numbers.values) if c.kind == "int" else numbers.values.round(2)
            conventions[c.field] = numbers.describe()
        elif c.kind == "id":
            typed[c.field] = _displayed_ids(_as_text(text), letters.get(c.field), rows, sheet_name, file, options)
        else:
            typed[c.field] = _as_text(text)
    return typed, conventions


def _refuse_conflict(
    conflict: tuple[int, int] | None,
    c: ColumnSpec,
    text: pl.Series,
    rows: pl.Series,
    letters: dict[str, str],
    sheet_name: str,
    file: Path,
    what: str,
    sides: tuple[str, str],
) -> None:
    if conflict is None:
        return
    cells = [f"{sheet_name}!{letters[c.field]}{rows[i]}" for i in conflict]
    shown = [_shown(text[i]) for i in conflict]
    raise WorkbookRefused(
        file,
        f"sheet '{sheet_name}' column '{c.header}' mixes {what}: {cells[0]} '{shown[0]}' is {sides[0]}, "
        f"{cells[1]} '{shown[1]}' is {sides[1]}; export the column in one convention",
        sheet=sheet_name,
        column=c.header,
        cells=cells,
    )


def _shown(value: object, limit: int = 60) -> str:
    """A cell's text as a message may quote it: NUL spelled out, cut to a readable length."""
    text = str(value).replace("\x00", "\\x00")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"


def _whole_numbers(values: pl.Series) -> pl.Series:
    """Whole numbers as Int64, null where a value has a fraction. Clipped first so that the cast
    cannot overflow on 2**63 or 1e300: anything beyond the warehouse's integer range is then
    quarantined by `_impossible` with the cell's own text."""
    clipped = values.clip(-(2.0**62), 2.0**62)
    return pl.select(pl.when(clipped == clipped.round(0)).then(clipped)).to_series().cast(pl.Int64)


def _typed_number_cells(
    letter: str | None, rows: pl.Series, sheet_name: str, file: Path, options: SheetOptions
) -> pl.Series | None:
    """Which rows of a column hold a typed number (calamine writes it `1234.5`, which a column
    of decimal-comma text must not re-read): from the sheet XML, only for such a column."""
    member = options.members.get(sheet_name)
    if letter is None or member is None:
        return None
    with zipfile.ZipFile(file) as archive:
        cells = column_styles(archive, member, [letter])
    numeric = cells.filter(pl.col("type") == "n").select(pl.col("row"), typed=pl.lit(True))
    return (
        pl.DataFrame({"row": rows.cast(pl.Int64)})
        .join(numeric, on="row", how="left", maintain_order="left")["typed"]
        .fill_null(False)
    )


def _displayed_ids(
    ids: pl.Series, letter: str | None, rows: pl.Series, sheet_name: str, file: Path, options: SheetOptions
) -> pl.Series:
    """An id typed as a number reads as Excel displays it: `3208` under the format `00000` is
    `03208`, the same as the text id in every other sheet and export. The cells' styles are
    read from the sheet XML only when the workbook has such a format and the column digits."""
    member = options.members.get(sheet_name)
    if not options.padding or letter is None or member is None or not ids.str.contains(r"^\d+$").any():
        return ids
    formats = pl.DataFrame(
        [(style, *shape) for style, shape in options.padding.items()],
        schema={"style": pl.Int64, "prefix": pl.String, "width": pl.Int64, "suffix": pl.String},
        orient="row",
    )
    with zipfile.ZipFile(file) as archive:
        styled = column_styles(archive, member, [letter])
    padded = styled.filter(pl.col("type") == "n").join(formats, on="style").select("row", "prefix", "width", "suffix")
    shown = pl.DataFrame({"row": rows.cast(pl.Int64), "id": ids}).join(
        padded, on="row", how="left", maintain_order="left"
    )
    return (
        shown.select(
            pl.when(pl.col("width").is_not_null() & pl.col("id").str.contains(r"^\d+$"))
            .then(pl.col("prefix") + pl.col("id").str.zfill(pl.col("width")) + pl.col("suffix"))
            .otherwise(pl.col("id"))
        )
        .to_series()
        .alias(ids.name)
    )


def _impossible(c: ColumnSpec, values: pl.Series, options: SheetOptions) -> list[tuple[pl.Series, pl.Expr]]:
    """(mask, reason) for parsed values the warehouse column cannot hold or that cannot be true.
    A reason is an expression over the flagged rows only: `raw` (their text, quotable) and
    `value` (their parsed value)."""
    quoted = pl.lit(f"{c.header} '") + pl.col("raw") + pl.lit("' ")
    if c.kind in ("date", "month"):
        low, high = options.date_range
        after = (
            f"after the export date {options.export_day}"
            if options.export_day == high
            else f"after {high}, the last day the settings allow"
        )
        return [
            (
                values < low,
                quoted + pl.lit(f"is before {low}, the earliest sale date allowed (setting earliest_sale_date)"),
            ),
            (values > high, quoted + pl.lit(f"is {after}: a sale cannot be dated after its export")),
        ]
    if c.kind == "int":
        low, high = INT_RANGE
        return [
            (
                ~values.is_between(low, high),
                quoted + pl.lit(f"is out of range for the warehouse column ({WAREHOUSE_TYPES['int']}: {low}..{high})"),
            )
        ]
    if c.kind == "decimal":
        return [
            (
                values.abs() >= DECIMAL_LIMIT,
                quoted
                + pl.lit(
                    f"is out of range for the warehouse column ({WAREHOUSE_TYPES['decimal']}: below 10^16 in absolute value)"
                ),
            )
        ]
    limit = MAX_ID_CHARS if c.kind == "id" else MAX_TEXT_CHARS
    long = values.str.len_bytes() > limit
    if long.any():  # bytes >= characters: characters are counted only where it can matter
        long = long & (values.str.len_chars() > limit)
    return [
        (
            values.str.contains("\x00", literal=True),
            pl.lit(f"{c.header} holds a NUL character (written _x0000_ in the file), which PostgreSQL cannot store"),
        ),
        (
            long,
            pl.lit(f"{c.header} is ")
            + pl.col("value").str.len_chars().cast(pl.String)
            + pl.lit(f" characters long, above the {limit} a{'n id' if c.kind == 'id' else ' text'} may have"),
        ),
    ]


def _quarantine(
    spec: SheetSpec, frame: pl.DataFrame, raw: pl.DataFrame, letters: dict[str, str], options: SheetOptions
) -> pl.DataFrame:
    """Rows with a required cell blank, a cell that does not parse or a value the warehouse
    cannot hold (or that cannot be true): the first such cell and why. The masks are cheap
    comparisons over the whole sheet; the reasons are built for the flagged rows only
    (building them for every row cost 1.5 s at 1.5M rows)."""
    kinds = {"date": "a date", "month": "a month", "int": "a whole number", "decimal": "a number"}
    found = []
    for order, c in enumerate(spec.columns):
        text = raw[c.field]
        present = text.is_not_null() & (text != "")
        parsed_null = frame[c.field].is_null()
        checks = [
            (
                parsed_null & present,
                pl.lit(f"{c.header} is not {kinds.get(c.kind, 'text')}: '") + pl.col("raw") + pl.lit("'"),
            )
        ]
        if c.required:
            checks.append((parsed_null & ~present, pl.lit(f"{c.header} is blank")))
        checks += _impossible(c, frame[c.field], options)
        masks = [mask.fill_null(False) for mask, _ in checks]
        flagged = pl.select(pl.any_horizontal(masks)).to_series() if len(masks) > 1 else masks[0]
        if not flagged.any():
            continue
        rows = flagged.arg_true()
        reason = pl.when(pl.lit(masks[0].gather(rows))).then(checks[0][1])
        for mask, why in zip(masks[1:], [why for _, why in checks[1:]]):
            reason = reason.when(pl.lit(mask.gather(rows))).then(why)
        shown = text.gather(rows).str.replace_all("\x00", "\\x00", literal=True)
        found.append(
            pl.DataFrame(
                {
                    "source_row": frame["source_row"].gather(rows),
                    "order": pl.Series([order] * len(rows), dtype=pl.Int32),
                    "raw": pl.select(
                        pl.when(shown.str.len_chars() > 60)
                        .then(shown.str.slice(0, 60) + pl.lit("..."))
                        .otherwise(shown)
                    ).to_series(),
                    "value": frame[c.field].gather(rows).cast(pl.String),
                }
            ).select(
                "source_row",
                "order",
                cell=pl.lit(f"{spec.name}!{letters.get(c.field, '?')}") + pl.col("source_row").cast(pl.String),
                reason=reason,
            )
        )
    if not found:
        return pl.DataFrame(schema={"source_row": pl.Int32, "cell": pl.String, "reason": pl.String})
    return (
        pl.concat(found)
        .sort("source_row", "order")
        .unique("source_row", keep="first", maintain_order=True)
        .select("source_row", "cell", "reason")
    )


def _quarter_starts(days: pl.Series, fiscal_start_month: int) -> pl.Series:
    month_index = days.dt.year().cast(pl.Int32) * 12 + days.dt.month().cast(pl.Int32) - 1
    offset = (days.dt.month().cast(pl.Int32) - fiscal_start_month) % 3
    start_index = month_index - offset
    return pl.select(pl.date(start_index // 12, start_index % 12 + 1, 1)).to_series().alias("quarter_start")


def _quarter_hashes(sheets: dict[str, SheetRead]) -> dict[str, str]:
    """Per-quarter content hash over every dated sheet, independent of row order, from the
    project's canonical row bytes (lib/ingest/fingerprint.py; never polars' unstable hash_rows)."""
    digests: dict[str, hashlib._Hash] = {}
    for name in sorted(sheets):
        if not sheets[name].spec.date_field:
            continue
        for q, digest in sheets[name].quarter_digests().items():
            digests.setdefault(q, hashlib.sha256()).update(f"{name}:{digest};".encode())
    return {q: d.hexdigest()[:16] for q, d in sorted(digests.items())}


def _inspect_parts(path: Path, limits: Limits) -> tuple[list, list[str]]:
    """The zip checked before calamine opens it: sizes and ratio (a zip bomb), then each
    contract sheet's extent against the limits (its <dimension>, and for sheets small enough
    its cells). Returns the sheet parts and the number format code of each cell style."""
    try:
        with zipfile.ZipFile(path) as archive:
            xlsx_parts.check_container(archive, limits)
            parts = xlsx_parts.sheet_parts(archive)
            codes = xlsx_parts.cell_formats(archive)
    except PartsProblem as exc:
        raise WorkbookRefused(path, exc.reason) from None
    except (KeyError, ET.ParseError, zipfile.BadZipFile) as exc:
        raise WorkbookRefused(
            path,
            f"not a readable workbook (its workbook or styles part is missing or broken: "
            f"{type(exc).__name__}: {_shown(exc, 200)})",
        ) from None
    return parts, codes


def _guard_sheets(
    path: Path, parts: list, wanted: set[str], codes: list[str], limits: Limits
) -> dict[str, tuple[str, ...]]:
    """Refuse a sheet whose extent is beyond the limits, and a workbook whose contract sheets
    together are; return the date cells of each sheet that no date can hold (calamine panics
    on them), by zip member."""
    huge: dict[str, tuple[str, ...]] = {}
    extents: dict[str, int] = {}
    dates = xlsx_parts.date_styles(codes)
    with zipfile.ZipFile(path) as archive:
        for part in parts:
            if part.name not in wanted or part.xml not in archive.NameToInfo:
                continue
            try:
                declared = xlsx_parts.declared_extent(archive, part.xml)
                if declared is not None:
                    xlsx_parts.check_extent(part.name, *declared, limits)
                    extents[part.name] = declared[1] * declared[2]
                if archive.getinfo(part.xml).file_size <= xlsx_parts.SCAN_MAX_BYTES:
                    scan = xlsx_parts.scan_sheet(archive, part.xml, dates)
                    xlsx_parts.check_extent(part.name, scan.corner, scan.last_row, scan.last_column, limits)
                    scan.check_density(part.name)
                    extents[part.name] = max(extents.get(part.name, 0), scan.last_row * scan.last_column)
                    if scan.huge_date_cells:
                        huge[part.xml] = scan.huge_date_cells
            except PartsProblem as exc:
                raise WorkbookRefused(path, exc.reason, sheet=exc.sheet, cells=exc.cells) from None
    try:
        xlsx_parts.check_workbook_cells(extents, limits)
    except PartsProblem as exc:
        raise WorkbookRefused(path, exc.reason) from None
    return huge


@dataclass
class SheetOptions:
    """Everything a sheet's reading depends on besides its cells (picklable: sent to the worker)."""

    aliases: AliasTable
    reference: Reference
    fiscal_start_month: int
    date_range: tuple[dt.date, dt.date]
    quarantine_max_share: float
    export_day: dt.date | None = None
    date_order: str = DAY_FIRST  # for text dates whose column shows no order
    padding: dict[int, tuple[str, int, str]] = field(default_factory=dict)  # zero-padding number formats by style
    members: dict[str, str] = field(default_factory=dict)  # sheet name -> its XML in the zip


def judge_sheet(path: Path, sheet_name: str, spec: SheetSpec, load, options: SheetOptions) -> SheetRead:
    """Load (calling `load()`), parse and validate one sheet, refusing it as the contract says.
    A crash of calamine on a cell becomes a refusal naming the sheet; anything else propagates."""
    try:
        cells = load()
        result = _read_sheet(cells, sheet_name, spec, options, path)
        del cells
    except (WorkbookRefused, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        if not _reader_crashed(exc):
            raise  # OSError, or a bug of ours or of a library: a failure, not the workbook's fault
        first = (str(exc).splitlines() or [""])[0][:200]
        raise WorkbookRefused(
            path,
            f"sheet '{sheet_name}' could not be read: the Excel reader gave up on "
            f"a cell it cannot convert ({type(exc).__name__}: {first}); look for "
            "huge or negative numbers in date-formatted cells",
            sheet=sheet_name,
        ) from None
    _refuse_if_empty(path, sheet_name, spec, result)
    _refuse_if_mostly_unparseable(path, sheet_name, result, options.quarantine_max_share)
    return result


def _refuse_if_empty(path: Path, sheet_name: str, spec: SheetSpec, result: SheetRead) -> None:
    """A required sheet with only its header row would replace every published quarter by nothing."""
    if spec.required and result.rows_read == 0:
        raise WorkbookRefused(
            path,
            f"required sheet '{sheet_name}' has a header row (row {result.header_row}) but no data rows; "
            "export it again with its data",
            sheet=sheet_name,
        )


def _reader_crashed(exc: BaseException) -> bool:
    """calamine's Rust panics surface as pyo3's PanicException, a BaseException: the reader
    gave up on a cell it cannot convert (e.g. -1e308 in a date-formatted column)."""
    return type(exc).__name__ == "PanicException" or isinstance(exc, fastexcel.FastExcelError)


def _refuse_if_mostly_unparseable(path: Path, sheet_name: str, result: SheetRead, max_share: float) -> None:
    if result.rows_read and result.rows_quarantined / result.rows_read > max_share:
        cells = result.quarantine["cell"].head(MAX_CELLS_IN_ERROR).to_list()
        first_reason = result.quarantine["reason"][0]
        raise WorkbookRefused(
            path,
            f"sheet '{sheet_name}' has {result.rows_quarantined} of {result.rows_read} rows that cannot be parsed "
            f"({result.rows_quarantined / result.rows_read:.1%}, above the {max_share:.0%} allowed); "
            f"first offending cells: {', '.join(cells)} (e.g. {first_reason})",
            sheet=sheet_name,
            cells=cells,
        )


def plausible_dates(
    export_day: dt.date, earliest: dt.date = EARLIEST_DATE, margin_days: int = DATE_MARGIN_DAYS
) -> tuple[dt.date, dt.date]:
    """Dates a sale-out line can carry: from `earliest` to the export date plus a margin."""
    return earliest, export_day + dt.timedelta(days=margin_days)


def read_workbook(
    path: str | os.PathLike,
    *,
    reference: Reference,
    aliases: AliasTable | None = None,
    fiscal_start_month: int = 1,
    quarantine_max_share: float = 0.02,
    earliest_date: dt.date = EARLIEST_DATE,
    date_margin_days: int = DATE_MARGIN_DAYS,
    date_order: str = DAY_FIRST,
    limits: Limits | None = None,
    parallel: bool | None = None,
) -> WorkbookRead:
    """Parse and validate a whole workbook; raise WorkbookRefused if it must not be ingested.

    Only the workbook's own faults are refusals; an I/O error or a bug of the reader
    propagates as itself (a failure the platform retries, not something sales ops can fix).
    `parallel`: SVR-RM in a second process (None: when the file is large enough to gain)."""
    started = time.perf_counter()
    path = Path(path).resolve()
    _check_container(path)
    aliases = aliases or AliasTable()
    export_day = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC).date()
    date_range = plausible_dates(export_day, earliest_date, date_margin_days)
    limits = limits or Limits()
    parts, codes = _inspect_parts(path, limits)
    names = [p.name for p in parts]
    hidden_names = {p.name for p in parts if p.hidden}
    matched: dict[str, tuple[str, SheetSpec]] = {}
    ignored: list[str] = []
    for name in names:
        spec = match_sheet(name)
        if spec is None or spec.name in matched or name in hidden_names:
            ignored.append(name)  # pivots, notes, helper sheets: named exactly as in the workbook
        else:
            matched[spec.name] = (name, spec)
    for spec in SHEETS:
        if spec.required and spec.name not in matched:
            raise WorkbookRefused(
                path, f"required sheet '{spec.name}' is missing; sheets found: {names}", sheet=spec.name
            )
    huge = _guard_sheets(path, parts, {name for name, _ in matched.values()}, codes, limits)
    try:
        if huge:  # those cells as text: the reader quarantines their rows instead of calamine panicking
            with zipfile.ZipFile(path) as archive:
                reader = fastexcel.read_excel(xlsx_parts.with_cells_as_text(archive, huge))
            parallel = False  # the worker would open the file as it is
        else:
            reader = fastexcel.read_excel(str(path))
    except OSError:
        raise
    except Exception as exc:  # calamine reports corrupt containers in many ways
        raise WorkbookRefused(path, f"not a readable workbook ({type(exc).__name__}: {_shown(exc, 200)})") from None
    order = sorted(matched.values(), key=lambda item: item[1].is_sales or item[1].date_field is not None)
    options = SheetOptions(
        aliases,
        reference,
        fiscal_start_month,
        date_range,
        quarantine_max_share,
        export_day=export_day,
        date_order=date_order,
        padding=xlsx_parts.padding_styles(codes),
        members={p.name: p.xml for p in parts},
    )
    from synoforecast.lib.ingest.sheet_pool import read_sheets  # beside this module: the parallel half

    sheets = read_sheets(path, reader, order, options, parallel=parallel)
    stat = path.stat()
    ordered = {s.name: sheets[s.name] for s in SHEETS if s.name in sheets}
    return WorkbookRead(
        file=str(path),
        sha256=sha256_file(path),
        size_bytes=stat.st_size,
        mtime=dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.UTC),
        sheets=ordered,
        ignored_sheets=ignored,
        hidden_sheets=[n for n in names if n in hidden_names],
        read_seconds=round(time.perf_counter() - started, 3),
        fiscal_start_month=fiscal_start_month,
        quarter_hashes=_quarter_hashes(ordered),
    )
