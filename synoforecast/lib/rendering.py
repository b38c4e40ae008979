"""Text from a workbook, rendered safely: a Markdown table cell and a plot label.

A region named with two `$` passed validation, then failed the regional forecast step:
matplotlib parsed the plot title as math. A customer name holding `|` or a line break
splits a Markdown table row. Both renderers take workbook text as plain text here.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence


def markdown_cell(value: Any, fmt: Callable[[Any], str] = str) -> str:
    """One table cell: `|` escaped, line breaks and NUL turned into spaces."""
    text = "" if value is None else fmt(value)
    return " ".join(text.replace("\x00", " ").split()).replace("|", "\\|")


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], fmt: Callable[[Any], str] = str) -> str:
    lines = ["| " + " | ".join(markdown_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(markdown_cell(v, fmt) for v in row) + " |" for row in rows]
    return "\n".join(lines)


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
