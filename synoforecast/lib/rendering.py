"""Tables and plots for people: the one text-table renderer of the CLI, the one Markdown
table of the UI's metadata, and a plot label, all taking workbook text as plain text.

A region named with two `$` passed validation, then failed the regional forecast step:
matplotlib parsed the plot title as math. A customer name holding `|` or a line break
splits a Markdown table row. Both renderers take workbook text as plain text here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any


def markdown_cell(value: Any, fmt: Callable[[Any], str] = str) -> str:
    """One table cell: `|` escaped, line breaks and NUL turned into spaces."""
    text = "" if value is None else fmt(value)
    return " ".join(text.replace("\x00", " ").split()).replace("|", "\\|")


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], fmt: Callable[[Any], str] = str) -> str:
    lines = ["| " + " | ".join(markdown_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(markdown_cell(v, fmt) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, left: int = 1, indent: str = "  ", rule: bool = False
) -> str:
    """A fixed-width table for the terminal: cells are str()'d (format numbers before), the
    first ``left`` columns align left (names), the others right (numbers); ``rule`` draws a
    line of dashes under the header."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return (
            indent
            + "  ".join(v.ljust(w) if i < left else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))).rstrip()
        )

    out = [line(cells[0])] + ([line(["-" * w for w in widths])] if rule else []) + [line(r) for r in cells[1:]]
    return "\n".join(out)


def pyplot():
    """matplotlib's pyplot drawing to files, with mathtext off so `$` in a label is a dollar
    sign; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    matplotlib.rcParams["text.parse_math"] = False
    return plt
