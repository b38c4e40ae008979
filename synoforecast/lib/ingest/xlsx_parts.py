"""The workbook's zip parts, read without calamine.

calamine parses a sheet into one dense grid spanning its first to its last cell, so a
127 KB file with one stray cell at XFD1048576 asked for 512 GiB and aborted the process,
and it panics on a date cell holding -1e308. What it cannot be trusted with is checked
here first, from the zip's directory and the sheet XML: the sizes and compression ratio
(a zip bomb), each sheet's extent against the configured limits, and the date cells no
date can hold (rewritten as text, so the reader quarantines their rows). The same parts
give what calamine does not report: which sheets are hidden, and the number format that
makes an id cell display `03208` where it holds 3208.
"""

from __future__ import annotations

import io
import posixpath
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass

import polars as pl

# sheets up to this size of XML are scanned cell by cell before calamine sees them
# (8 MB for the default 20k-row sample: ~40 ms); a larger sheet is judged by its
# <dimension> element (a 1M-row sheet is 400 MB of XML: a scan would add ~1.1 s)
SCAN_MAX_BYTES = 64 * 1024 * 1024
RATIO_MIN_BYTES = 16 * 1024 * 1024  # small parts compress freely; a bomb is large by definition
SPARSE_MIN_CELLS, SPARSE_RATIO = 1_000_000, 20  # an extent this large, this empty, is a stray cell
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_CELL_REF = re.compile(rb'<c r="([A-Z]{1,3})(\d+)"')
_ROW_REF = re.compile(rb'<row r="(\d+)"')
# a cell whose number no date can hold (|v| >= 1e11 days, NaN, infinity): calamine panics
# converting it when its style is a date format
_HUGE_CELL = re.compile(
    rb'<c r="([A-Z]{1,3}\d+)"([^>]*)>\s*<v>\s*(-?(?:\d{12,}(?:\.\d*)?(?:[eE][+-]?\d+)?'
    rb'|\d+(?:\.\d*)?[eE]\+?0*(?:1[1-9]|[2-9]\d|\d{3,})|(?i:nan|[+-]?inf(?:inity)?)))\s*</v>\s*</c>'
)
_DATE_CODE = re.compile(r"[dmyhs]", re.IGNORECASE)
_BUILTIN_DATE_FORMATS = set(range(14, 23)) | set(range(27, 37)) | set(range(45, 48)) | set(range(50, 59))
_PADDING = re.compile(r'^((?:"[^"]*")*)(0{2,})((?:"[^"]*")*)$')


@dataclass(frozen=True)
class Limits:
    """What one workbook may hold before it is refused unread (settings reader_max_*)."""

    max_uncompressed_bytes: int = 2 * 1024**3
    max_compression_ratio: float = 50.0  # real exports: 10-25x (the 1M-row sample 20x); a bomb: 100x and more
    max_sheet_rows: int = 1_048_576  # Excel's own limit
    max_sheet_cells: int = 15_000_000  # first to last row times first to last column
    # all contract sheets together: what bounds the reader's memory (the 1M-row benchmark
    # workbook, 15M cells, peaks at 1.13 GB; at 20M cells a workbook takes ~1.5 GB)
    max_workbook_cells: int = 20_000_000


class PartsProblem(ValueError):
    """The container or a sheet breaks a limit; the reader turns it into a refusal."""

    def __init__(self, reason: str, sheet: str | None = None, cells: tuple[str, ...] = ()):
        super().__init__(reason)
        self.reason, self.sheet, self.cells = reason, sheet, cells


@dataclass(frozen=True)
class SheetPart:
    name: str  # as in the workbook
    xml: str  # zip member
    hidden: bool


def column_number(letters: str) -> int:
    number = 0
    for char in letters:
        number = number * 26 + ord(char) - 64
    return number


def split_ref(ref: str) -> tuple[int, int]:
    """`XFD1048576` -> (1048576, 16384): row and column, both 1-based."""
    match = re.fullmatch(r"\$?([A-Z]{1,3})\$?(\d+)", ref.upper())
    if match is None:
        raise ValueError(f"not a cell reference: {ref!r}")
    return int(match.group(2)), column_number(match.group(1))


def sheet_parts(archive: zipfile.ZipFile) -> list[SheetPart]:
    """Every sheet in workbook order with its XML member and whether Excel hides it."""
    workbook = ET.fromstring(archive.read("xl/workbook.xml"))
    try:
        rels = ET.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
        targets = {r.get("Id"): r.get("Target", "") for r in rels}
    except KeyError:
        targets = {}
    parts = []
    for sheet in workbook.iter(f"{_MAIN}sheet"):
        target = targets.get(sheet.get(f"{_REL}id"), "")
        member = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
        parts.append(SheetPart(sheet.get("name", ""), member, sheet.get("state") in ("hidden", "veryHidden")))
    return parts


def check_container(archive: zipfile.ZipFile, limits: Limits) -> None:
    """Refuse a workbook whose parts would unpack beyond the limits (a zip bomb), from the
    sizes in the zip directory and before anything is decompressed."""
    infos = archive.infolist()
    total = sum(i.file_size for i in infos)
    if total > limits.max_uncompressed_bytes:
        raise PartsProblem(
            f"the workbook unpacks to {total / 1024**2:,.0f} MB, above the "
            f"{limits.max_uncompressed_bytes / 1024**2:,.0f} MB allowed (setting reader_max_uncompressed_mb)"
        )
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= RATIO_MIN_BYTES and ratio > limits.max_compression_ratio:
            raise PartsProblem(
                f"part {info.filename} unpacks {ratio:,.0f} times its compressed size "
                f"({info.file_size / 1024**2:,.0f} MB from {info.compress_size / 1024**2:,.1f} MB), above "
                f"the {limits.max_compression_ratio:,.0f}x allowed (setting reader_max_compression_ratio): "
                "a real export does not compress like that"
            )


def declared_extent(archive: zipfile.ZipFile, member: str) -> tuple[str, int, int] | None:
    """(bottom-right reference, rows, columns) from the sheet's <dimension> element, if any."""
    with archive.open(member) as stream:
        head = stream.read(64 * 1024)
    match = re.search(rb'<dimension ref="([A-Z$]{1,4}\d+)(?::([A-Z$]{1,4}\d+))?"', head)
    if match is None:
        return None
    first = split_ref(match.group(1).decode())
    last = split_ref((match.group(2) or match.group(1)).decode())
    return (match.group(2) or match.group(1)).decode().replace("$", ""), last[0] - first[0] + 1, last[1] - first[1] + 1


def check_extent(sheet: str, corner: str, rows: int, columns: int, limits: Limits) -> None:
    cells = rows * columns
    if rows > limits.max_sheet_rows or cells > limits.max_sheet_cells:
        raise PartsProblem(
            f"sheet '{sheet}' reaches cell {corner}: {rows:,} rows by {columns:,} columns ({cells:,} cells), above "
            f"the {limits.max_sheet_rows:,} rows and {limits.max_sheet_cells:,} cells allowed (settings "
            f"reader_max_sheet_rows, reader_max_sheet_cells); if {corner} holds a stray value or format far from "
            "the data, clear it (select the empty rows and columns, Delete) and export again",
            sheet=sheet,
            cells=(f"{sheet}!{corner}",),
        )


def check_workbook_cells(extents: dict[str, int], limits: Limits) -> None:
    total = sum(extents.values())
    if total > limits.max_workbook_cells:
        sizes = ", ".join(f"'{name}' {cells:,}" for name, cells in extents.items())
        raise PartsProblem(
            f"the workbook's sheets span {total:,} cells ({sizes}), above the "
            f"{limits.max_workbook_cells:,} allowed in one workbook (setting reader_max_workbook_cells)"
        )


@dataclass(frozen=True)
class SheetScan:
    last_row: int
    last_column: int
    corner: str
    cells: int  # cells present in the XML
    huge_date_cells: tuple[str, ...]  # references of date cells calamine would panic on

    def check_density(self, sheet: str) -> None:
        """A sheet whose extent is mostly empty holds a stray cell: a 4 KB file reaching J1048576
        took 600 MB and 2.7 s to read. Real exports fill most of their extent."""
        extent = self.last_row * self.last_column
        if extent >= SPARSE_MIN_CELLS and extent > SPARSE_RATIO * max(self.cells, 1):
            raise PartsProblem(
                f"sheet '{sheet}' reaches cell {self.corner} ({extent:,} cells from A1) but holds only {self.cells:,} "
                f"cells: a stray value or format far from the data; clear {self.corner} (select the empty rows and "
                "columns below and right of the data, Delete) and export again",
                sheet=sheet,
                cells=(f"{sheet}!{self.corner}",),
            )


def scan_sheet(archive: zipfile.ZipFile, member: str, date_styles: frozenset[int]) -> SheetScan:
    """The sheet's true extent and its impossible date cells, from its XML (small sheets)."""
    data = archive.read(member)
    rows = [int(r) for r in _ROW_REF.findall(data)]
    letters, cell_rows = set(), []
    for column, row in _CELL_REF.findall(data):
        letters.add(column)
        cell_rows.append(int(row))
    last_row = max(rows + cell_rows, default=0)
    last_letters = max(letters, key=lambda s: (len(s), s), default=b"A").decode()
    huge = tuple(ref.decode() for ref, attrs, _ in _HUGE_CELL.findall(data) if _style(attrs) in date_styles)
    return SheetScan(last_row, column_number(last_letters), f"{last_letters}{last_row}", len(cell_rows), huge)


def _style(attributes: bytes) -> int:
    match = re.search(rb'\bs="(\d+)"', attributes)
    return int(match.group(1)) if match else 0


def cell_formats(archive: zipfile.ZipFile) -> list[str]:
    """The number format code of each cell style (cellXfs index), from xl/styles.xml."""
    try:
        root = ET.fromstring(archive.read("xl/styles.xml"))
    except KeyError:
        return []
    custom = {int(f.get("numFmtId", -1)): f.get("formatCode", "") for f in root.iter(f"{_MAIN}numFmt")}
    xfs = root.find(f"{_MAIN}cellXfs")
    codes = []
    for xf in xfs if xfs is not None else []:
        number = int(xf.get("numFmtId", 0))
        codes.append(custom.get(number, f"builtin:{number}"))
    return codes


def date_styles(codes: list[str]) -> frozenset[int]:
    """Cell styles calamine reads as dates: built-in date formats and custom codes with d, m,
    y, h or s outside quoted text and [colour] sections."""
    found = set()
    for index, code in enumerate(codes):
        if code.startswith("builtin:"):
            if int(code.split(":")[1]) in _BUILTIN_DATE_FORMATS:
                found.add(index)
        elif _DATE_CODE.search(re.sub(r'"[^"]*"|\[[^\]]*\]|\\.', "", code)):
            found.add(index)
    return frozenset(found)


def padding_styles(codes: list[str]) -> dict[int, tuple[str, int, str]]:
    """Cell styles that display a whole number zero-padded (`00000`, `"C-"000000`):
    style -> (literal prefix, width, literal suffix)."""
    found = {}
    for index, code in enumerate(codes):
        match = _PADDING.match(code)
        if match:
            found[index] = (match.group(1).replace('"', ""), len(match.group(2)), match.group(3).replace('"', ""))
    return found


def column_styles(archive: zipfile.ZipFile, member: str, letters: list[str]) -> pl.DataFrame:
    """Row, column, style and type of every cell of these columns (one pass over the XML;
    only run when a padded id may be present)."""
    pattern = re.compile(rb'<c r="(' + b"|".join(s.encode() for s in letters) + rb')(\d+)"([^>]*)>')
    with archive.open(member) as stream:
        found = pattern.findall(stream.read())
    frame = pl.DataFrame(
        {
            "column": [c.decode() for c, _, _ in found],
            "row": [int(r) for _, r, _ in found],
            "attributes": [a.decode() for _, _, a in found],
        },
        schema={"column": pl.String, "row": pl.Int64, "attributes": pl.String},
    )
    return frame.with_columns(
        style=pl.col("attributes").str.extract(r'\bs="(\d+)"', 1).cast(pl.Int64).fill_null(0),
        type=pl.col("attributes").str.extract(r'\bt="(\w+)"', 1).fill_null("n"),
    ).drop("attributes")


def with_cells_as_text(archive: zipfile.ZipFile, cells: dict[str, tuple[str, ...]]) -> bytes:
    """The workbook again, with these cells (by sheet member) turned into text cells holding
    their raw value, so calamine reads `-1e+308` as text instead of panicking on it."""

    def patch(member: str) -> bytes:
        wanted = set(cells[member])

        def as_text(match: re.Match) -> bytes:
            if match.group(1).decode() not in wanted:
                return match.group(0)
            return b'<c r="' + match.group(1) + b'" t="inlineStr"><is><t>' + match.group(3) + b"</t></is></c>"

        return _HUGE_CELL.sub(as_text, archive.read(member))

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for info in archive.infolist():
            out.writestr(info.filename, patch(info.filename) if info.filename in cells else archive.read(info.filename))
    return buffer.getvalue()
