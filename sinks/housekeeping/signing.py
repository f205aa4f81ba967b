"""Receipts that prove authorship and download: Ed25519 signatures and a download proof.

The SFTP user can read every manifest, so the checksums of a package alone prove nothing: anyone
with read access could write a ``verified`` receipt without downloading a byte. A receipt
therefore carries two things the observer host checks before it believes it:

* **a download proof**: the backup PC picks a random ``nonce`` per receipt and, while it downloads,
  computes ``SHA-256(nonce || bytes)`` of every file (manifest included). Only someone holding the
  bytes can compute these; the observer recomputes them over its own package;
* **a signature** by the backup PC's Ed25519 key (an OpenSSH key made with
  ``ssh-keygen -t ed25519``) over the canonical form of the whole receipt (`signed_bytes`). The
  observer host knows the public key(s) from ``[housekeeping] receipt_public_key`` (a file of
  ``ssh-ed25519 AAAA... comment`` lines, one per backup PC or key generation).

Keys are read with ``cryptography`` (already a dependency of paramiko); nothing here is secret
but the private key file, which must be 0600 and is never logged.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sinks.housekeeping.manifest import CHUNK_BYTES, Receipt

_DOMAIN = b"krx-observer receipt v2\n"
NONCE_BYTES = 16


class SigningError(Exception):
    """A signing or verification key cannot be used (missing, unreadable, not Ed25519)."""


def fingerprint(public: Ed25519PublicKey) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint (what ``ssh-keygen -lf key.pub`` prints)."""
    line = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def signed_bytes(receipt: Receipt) -> bytes:
    """The canonical bytes a signature covers: every field but the signature, keys sorted."""
    unsigned = msgspec.structs.replace(receipt, signature="")
    return _DOMAIN + msgspec.json.encode(unsigned, order="sorted")


@dataclass(frozen=True, slots=True)
class SigningKey:
    private: Ed25519PrivateKey
    key_id: str

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        try:
            st = path.stat()
            data = path.read_bytes()
        except OSError as e:
            raise SigningError(f"receipt signing key {path}: {e.strerror}") from None
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise SigningError(
                f"receipt signing key {path} is readable by others "
                f"(mode {stat.S_IMODE(st.st_mode):o}): chmod 600 {path}"
            )
        try:
            key = serialization.load_ssh_private_key(data, password=None)
        except (ValueError, TypeError, msgspec.DecodeError) as e:
            raise SigningError(
                f"receipt signing key {path} is not an unencrypted OpenSSH private key: {e}"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningError(f"receipt signing key {path} is not Ed25519 (ssh-keygen -t ed25519)")
        return cls(key, fingerprint(key.public_key()))

    def sign(self, receipt: Receipt) -> Receipt:
        """`receipt` with ``key_id`` and ``signature`` set."""
        with_id = msgspec.structs.replace(receipt, key_id=self.key_id, signature="")
        signature = self.private.sign(signed_bytes(with_id))
        return msgspec.structs.replace(with_id, signature=base64.b64encode(signature).decode())


def load_public_keys(path: Path) -> dict[str, Ed25519PublicKey]:
    """``key_id -> key`` of every ``ssh-ed25519`` line of `path` (comments and blanks skipped)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise SigningError(f"receipt_public_key {path}: {e.strerror}") from None
    keys: dict[str, Ed25519PublicKey] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = serialization.load_ssh_public_key(line.encode())
        except (ValueError, TypeError) as e:
            raise SigningError(
                f"receipt_public_key {path} line {n}: not an OpenSSH public key: {e}"
            ) from None
        if not isinstance(key, Ed25519PublicKey):
            raise SigningError(f"receipt_public_key {path} line {n}: not ssh-ed25519")
        keys[fingerprint(key)] = key
    if not keys:
        raise SigningError(f"receipt_public_key {path} holds no ssh-ed25519 key")
    return keys


def check_signature(receipt: Receipt, keys: dict[str, Ed25519PublicKey]) -> str | None:
    """Why the signature of `receipt` is not good (None when it is)."""
    if not receipt.signature:
        return "receipt is not signed"
    key = keys.get(receipt.key_id)
    if key is None:
        return f"receipt is signed by an unknown key {receipt.key_id or '(none)'}"
    try:
        key.verify(base64.b64decode(receipt.signature, validate=True), signed_bytes(receipt))
    except (InvalidSignature, ValueError):
        return f"receipt signature does not verify with key {receipt.key_id}"
    return None


def new_nonce() -> str:
    return os.urandom(NONCE_BYTES).hex()


class ProofHasher:
    """``SHA-256(nonce || bytes)``, fed chunk by chunk next to the plain SHA-256."""

    def __init__(self, nonce: str):
        self._h = hashlib.sha256(bytes.fromhex(nonce))

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def proof_of_file(nonce: str, path: Path) -> str:
    """The download proof of a local file (what the observer host recomputes)."""
    h = ProofHasher(nonce)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()
