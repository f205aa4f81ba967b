"""Shared pieces of every message: the schema version, the vocabulary literals, the two Struct bases
(``_Msg`` tagged by ``kind``, ``_Plain`` untagged)."""

from __future__ import annotations

from typing import Literal

import msgspec

SCHEMA_VERSION = "1.0"

Track = Literal["swing", "scalp"]
QualityFlag = Literal["normal", "degraded", "gap"]
Severity = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
ArchiveKind = Literal["swing", "scalp", "raw", "system", "overflow", "metrics"]
DetailValue = str | int | float | bool | None | list[str]


class _Msg(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", omit_defaults=False):
    pass


class _Plain(msgspec.Struct, frozen=True, kw_only=True):
    pass


def field_count(struct_type: type[msgspec.Struct]) -> int:
    return len(struct_type.__struct_fields__)
