"""The backup manifest, the backup PC's receipt and the observer's verified marker, and the one
function that checks a package against its manifest (used by ``observer backup verify``, by the
backup PC after a pull, and by tests).

``manifest.json`` lists every file of the package (name, size, SHA-256) and, per family, every
archive file inside its tar (name, size, SHA-256, line count), so a pulled copy can be checked end
to end. A family with no files for the day has ``archive: null`` and a ``note``; it is never
silently missing. The manifest cannot list itself: the receipt carries the SHA-256 of the
manifest as the backup PC received it, and the observer compares it with its own copy.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Literal

import msgspec

from observer.days import DAY_KEY
from sinks.housekeeping.layout import MANIFEST_NAME

MANIFEST_FORMAT = 1
CHUNK_BYTES = 1 << 20
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_RECEIPT_BYTES = 1 << 20


class _Doc(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class MemberEntry(_Doc, frozen=True, kw_only=True):
    """One archive file inside a family's tar: ``name`` is its path relative to the data dir."""

    name: str
    size: int
    sha256: str
    lines: int


class FamilyEntry(_Doc, frozen=True, kw_only=True):
    family: str
    archive: str | None  # None: nothing for this day (see note)
    members: list[MemberEntry] = []
    note: str = ""


class FileEntry(_Doc, frozen=True, kw_only=True):
    name: str
    size: int
    sha256: str


class Manifest(_Doc, frozen=True, kw_only=True):
    format: int = MANIFEST_FORMAT
    day: str  # YYYYMMDD, KST trading date
    created_at: datetime  # RFC 3339, KST
    observer_version: str
    host: str
    families: list[FamilyEntry]
    files: list[FileEntry]  # every file of the package except manifest.json


class Receipt(_Doc, frozen=True, kw_only=True):
    """What the backup PC uploads after checking its pulled copy (``<receipts_dir>/YYYYMMDD.json``).

    ``nonce``/``proof`` prove the download and ``key_id``/``signature`` the author; see
    `sinks.housekeeping.signing`. A receipt without them is rejected by the observer host."""

    format: int = 2
    day: str
    status: Literal["verified", "failed"]
    manifest_sha256: str  # of manifest.json as received
    files: dict[str, str]  # package file name -> SHA-256 computed on the pulled copy
    members_checked: int
    checked_at: datetime
    checked_by: str
    problems: list[str] = []
    nonce: str = ""  # hex, chosen at random by the backup PC for this receipt
    proof: dict[str, str] = {}  # file name (manifest.json too) -> SHA-256(nonce || bytes downloaded)
    key_id: str = ""  # SHA256:... fingerprint of the signing key
    signature: str = ""  # base64 Ed25519 over signing.signed_bytes(receipt)


class VerifiedMarker(_Doc, frozen=True, kw_only=True):
    """Written by the observer host once a receipt matches its package: retention trusts only this."""

    day: str
    manifest_sha256: str
    files: int
    members_checked: int
    checked_at: datetime  # when the backup PC checked its copy
    checked_by: str
    recorded_at: datetime
    key_id: str = ""  # the key that signed the receipt


_encoder = msgspec.json.Encoder()
manifest_decoder = msgspec.json.Decoder(Manifest)
receipt_decoder = msgspec.json.Decoder(Receipt)
marker_decoder = msgspec.json.Decoder(VerifiedMarker)


def encode_doc(doc: msgspec.Struct) -> bytes:
    return msgspec.json.format(_encoder.encode(doc), indent=1) + b"\n"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_stream(fh: IO[bytes], limit: int | None = None) -> tuple[str, int, int]:
    """(sha256, bytes, newline count) of `fh` read to its end (or `limit` bytes)."""
    h = hashlib.sha256()
    size = 0
    lines = 0
    while limit is None or size < limit:
        want = CHUNK_BYTES if limit is None else min(CHUNK_BYTES, limit - size)
        chunk = fh.read(want)
        if not chunk:
            break
        h.update(chunk)
        size += len(chunk)
        lines += chunk.count(b"\n")
    return h.hexdigest(), size, lines


def hash_file(path: Path) -> tuple[str, int]:
    with open(path, "rb") as fh:
        digest, size, _ = hash_stream(fh)
    return digest, size


@dataclass(slots=True)
class VerifyReport:
    """Outcome of `verify_package`: ``ok`` when there is no problem."""

    path: Path
    problems: list[str] = field(default_factory=list)
    manifest: Manifest | None = None
    manifest_sha256: str = ""
    file_sha256: dict[str, str] = field(default_factory=dict)
    files_checked: int = 0
    members_checked: int = 0
    bytes_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and self.manifest is not None


def read_manifest(package: Path) -> tuple[Manifest, bytes]:
    """Decode ``package/manifest.json``. Raises ValueError with a readable message."""
    path = package / MANIFEST_NAME
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes")
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e.strerror}") from e
    try:
        return manifest_decoder.decode(data), data
    except msgspec.DecodeError as e:
        raise ValueError(f"{path}: not a valid manifest: {e}") from e


def verify_package(package: Path) -> VerifyReport:
    """Check every file of `package` and every member of its tars against the manifest.

    Never raises for bad content: every mismatch, missing or extra file becomes a problem line."""
    report = VerifyReport(package)
    try:
        manifest, raw = read_manifest(package)
    except ValueError as e:
        report.problems.append(str(e))
        return report
    report.manifest = manifest
    report.manifest_sha256 = sha256_bytes(raw)
    if DAY_KEY.match(package.name) and manifest.day != package.name:
        report.problems.append(f"manifest is for day {manifest.day}, the directory is {package.name}")
    listed = {f.name: f for f in manifest.files}
    try:
        present = {e.name for e in os.scandir(package)} - {MANIFEST_NAME}
    except OSError as e:
        report.problems.append(f"{package}: cannot list: {e.strerror}")
        return report
    for name in sorted(present - set(listed)):
        report.problems.append(f"{name}: not listed in the manifest")
    for name, entry in sorted(listed.items()):
        path = package / name
        if "/" in name or name.startswith(".") or not path.is_file() or path.is_symlink():
            report.problems.append(f"{name}: missing")
            continue
        digest, size = hash_file(path)
        report.file_sha256[name] = digest
        report.files_checked += 1
        report.bytes_checked += size
        if size != entry.size:
            report.problems.append(f"{name}: size {size} != manifest {entry.size}")
        if digest != entry.sha256:
            report.problems.append(f"{name}: sha256 mismatch")
    for fam in manifest.families:
        if fam.archive is None:
            continue
        if fam.archive not in listed:
            report.problems.append(f"{fam.archive}: family {fam.family} archive not in the file list")
            continue
        if fam.archive in report.file_sha256 and not any(
            p.startswith(f"{fam.archive}:") for p in report.problems
        ):
            _verify_members(package / fam.archive, fam, report)
    return report


def _verify_members(path: Path, fam: FamilyEntry, report: VerifyReport) -> None:
    expected = {m.name: m for m in fam.members}
    seen: set[str] = set()
    try:
        with tarfile.open(path, "r:gz") as tar:
            for info in tar:
                name = info.name
                if not info.isreg():
                    report.problems.append(f"{fam.archive}: {name}: not a regular file")
                    continue
                entry = expected.get(name)
                if entry is None:
                    report.problems.append(f"{fam.archive}: {name}: not listed in the manifest")
                    continue
                seen.add(name)
                fh = tar.extractfile(info)
                if fh is None:
                    report.problems.append(f"{fam.archive}: {name}: unreadable")
                    continue
                digest, size, lines = hash_stream(fh)
                report.members_checked += 1
                if size != entry.size or digest != entry.sha256 or lines != entry.lines:
                    report.problems.append(f"{fam.archive}: {name}: content differs from the manifest")
    except (tarfile.TarError, OSError, EOFError) as e:
        report.problems.append(f"{fam.archive}: unreadable archive: {e}")
        return
    for name in sorted(set(expected) - seen):
        report.problems.append(f"{fam.archive}: {name}: missing from the archive")
