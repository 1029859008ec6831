"""Years out of free-text dates, and year bins, as polars expressions (no per-row Python).

Accepted: ``1575``, ``c.1575``, ``1390 BC``, ``100 AD``, ``December 27, 1802``, ``May, 1802`` (the
last 1-4 digit number, negative with ``BC``), and the spreadsheet form ``24-Jan-74``: a
spreadsheet only turns dates from 1900 on into that form, so a two-digit year is 19yy, or 20yy
for a death that would otherwise come less than ``MIN_AGE`` years after the birth (or, with no
birth known, for yy up to the current two-digit year). Anything else is null (unparsable).
"""

from __future__ import annotations

import datetime

import polars as pl

TWO_DIGIT = r"^\s*\d{1,2}-[A-Za-z]{3,9}-(\d{2})\s*$"
_YEAR = r"(\d{1,4})\s*(?:BC|B\.C\.|AD|A\.D\.)?"
MIN_AGE = 15


def year_of(text: pl.Expr) -> pl.Expr:
    """The year of a date string (negative for BC), null when none can be read; Int32."""
    last = text.str.extract_all(_YEAR).list.last()
    value = last.str.extract(r"(\d{1,4})").cast(pl.Int32, strict=False)
    bc = last.str.contains(r"B\.?C")
    two = text.str.extract(TWO_DIGIT).cast(pl.Int32, strict=False)
    year = pl.when(bc).then(-value).otherwise(value)
    return pl.when(two.is_not_null()).then(1900 + two).otherwise(year)


def death_year_of(text: pl.Expr, birth: pl.Expr) -> pl.Expr:
    """Like :func:`year_of`, resolving a two-digit death year against the birth year."""
    two = text.str.extract(TWO_DIGIT).cast(pl.Int32, strict=False)
    now = datetime.date.today().year % 100
    late = pl.when(birth.is_not_null()).then(1900 + two - birth < MIN_AGE).otherwise(two <= now)
    resolved = pl.when(late).then(2000 + two).otherwise(1900 + two)
    return pl.when(two.is_not_null()).then(resolved).otherwise(year_of(text))


def _label(year: pl.Expr) -> pl.Expr:
    return (
        pl.when(year < 0)
        .then(pl.concat_str((-year).cast(pl.String), pl.lit(" BC")))
        .otherwise(year.cast(pl.String))
    )


def year_bin(year: pl.Expr, width: int) -> pl.Expr:
    """The bin a year falls in, labelled ``1850-1899`` (width 50) or ``1888`` (width 1)."""
    if width < 1:
        raise ValueError("bin width must be >= 1")
    start = (year.floordiv(width) * width).cast(pl.Int32)
    if width == 1:
        return _label(start)
    return pl.concat_str(_label(start), pl.lit("-"), _label(start + width - 1))
