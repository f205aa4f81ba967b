"""KST trading days as the archive and the command line name them.

The archive names a day ``YYYYMMDD`` (partition directories, daily files, backup packages,
markers): `day_key` writes it, `DAY_KEY` / `day_of_key` read it back. An operator types a day as
``YYYYMMDD`` or ``YYYY-MM-DD``: `parse_day`, and `day_option` for a command's ``--day``.
"""

from __future__ import annotations

import re
from datetime import date

import click

from observer.clock import KST, Clock, SystemClock

DAY_KEY = re.compile(r"^[0-9]{8}\Z")
_ISO_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


def day_key(day: date) -> str:
    return f"{day:%Y%m%d}"


def day_of_key(name: str) -> date | None:
    """The day a ``YYYYMMDD`` name stands for; None for any other name (or an impossible date)."""
    if not DAY_KEY.match(name):
        return None
    try:
        return date(int(name[:4]), int(name[4:6]), int(name[6:]))
    except ValueError:
        return None


def parse_day(text: str) -> date:
    """``YYYYMMDD`` or ``YYYY-MM-DD`` (surrounding blanks ignored). Raises ValueError."""
    text = text.strip()
    if DAY_KEY.match(text):
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    if not _ISO_DAY.match(text):
        raise ValueError(f"not a day (YYYYMMDD or YYYY-MM-DD): {text!r}")
    return date.fromisoformat(text)


def day_option(text: str | None, clock: Clock | None = None) -> date:
    """A command's ``--day``/``--date``: a KST day, ``YYYYMMDD`` or ``YYYY-MM-DD``; None: today on
    `clock` (the system clock unless given). Anything else is a usage error (exit 2)."""
    if text is None:
        return (clock or SystemClock()).now().astimezone(KST).date()
    try:
        return parse_day(text)
    except ValueError:
        raise click.BadParameter(f"not a day (YYYYMMDD or YYYY-MM-DD): {text!r}") from None
