"""What can stop an export, a load or a report. Each message says what to do next."""

from __future__ import annotations


class ResearchError(Exception):
    """Base of every research-output failure; the CLI prints it and exits 1."""


class NoData(ResearchError):
    """The archive holds nothing for the asked day."""


class DamagedArchive(ResearchError):
    """A torn or undecodable line: run ``observer verify`` (and let the writer repair it) first."""


class CountMismatch(ResearchError):
    """What was written does not hold exactly what the archive holds; the output was discarded."""


class DatabaseError(ResearchError):
    """PostgreSQL is unreachable or refused the load; the day's previous state is unchanged."""
