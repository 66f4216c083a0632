"""Cells written to CSV files that a spreadsheet will open (issue 25, item 11): no formula injection.

A cell that starts with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return) is run as a formula by
spreadsheet software (``=HYPERLINK(...)`` from a report text or a file name). :func:`safe_cell` prefixes such a
text with an apostrophe, as OWASP recommends; numbers (``-5``, ``+1.5e3``) are left as they are, so numeric
columns stay numeric. Used by every CSV the tools write (``ecg-labels-from-reports``, ``ecg-eval``'s tables).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["safe_cell", "safe_row", "safe_dict"]

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """``value``, with a leading apostrophe if it is a text a spreadsheet would run as a formula."""
    if not isinstance(value, str) or not value.startswith(_TRIGGERS):
        return value
    try:
        float(value)
        return value  # a number such as -5 or +1.5
    except ValueError:
        return "'" + value


def safe_row(row: Iterable[object]) -> list[object]:
    return [safe_cell(v) for v in row]


def safe_dict(row: Mapping[str, object]) -> dict[str, object]:
    return {k: safe_cell(v) for k, v in row.items()}
