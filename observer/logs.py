"""JSON-lines logging: ``{timestamp, level, logger, message, extra}`` to stderr and a daily file.

Every line passes through `SecretMasker`, which replaces the values of every configured secret and
anything shaped like a bearer token or approval key with ``***`` — in the message, in ``extra`` and
in exception text alike.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from observer.clock import KST

_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
    re.compile(
        r'(?i)("?(?:appkey|appsecret|secretkey|app_key|app_secret|access_token|approval_key|token)"?\s*[:=]\s*"?)'
        r'[^"\s,}]{4,}'
    ),
]
_json = msgspec.json.Encoder()


class SecretMasker:
    def __init__(self, secrets: list[str] | None = None):
        self._values = sorted({s for s in (secrets or []) if len(s) >= 4}, key=len, reverse=True)

    def add(self, value: str) -> None:
        if len(value) >= 4 and value not in self._values:
            self._values.append(value)
            self._values.sort(key=len, reverse=True)

    def mask(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, "***")
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + "***", text)
        return text


MASKER = SecretMasker()


class JsonFormatter(logging.Formatter):
    def __init__(self, masker: SecretMasker):
        super().__init__()
        self.masker = masker

    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in record.__dict__.items() if k not in _STD_ATTRS and not k.startswith("_")}
        if record.exc_info:
            extra["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        doc = {
            "timestamp": datetime.fromtimestamp(record.created, KST).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "extra": extra,
        }
        line = _json.encode(msgspec.to_builtins(doc, str_keys=True, enc_hook=str)).decode()
        return self.masker.mask(line)


class DailyFileHandler(logging.Handler):
    """Appends to ``<dir>/<name>-YYYYMMDD.jsonl`` (KST date), 0600, reopening when the day changes."""

    def __init__(self, directory: Path, name: str):
        super().__init__()
        self.directory = directory
        self.name_prefix = name
        self._day = ""
        self._fh: Any = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            day = datetime.fromtimestamp(record.created, KST).strftime("%Y%m%d")
            if day != self._day or self._fh is None:
                self._open(day)
            self._fh.write(line + "\n")
            self._fh.flush()
        except OSError:
            self.handleError(record)

    def _open(self, day: str) -> None:
        if self._fh is not None:
            self._fh.close()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.directory / f"{self.name_prefix}-{day}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._fh = os.fdopen(fd, "a", encoding="utf-8")
        self._day = day

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        super().close()


def setup_logging(
    name: str, level: str = "INFO", log_dir: Path | None = None, secrets: list[str] | None = None
) -> None:
    """Configure the root logger of this process (idempotent)."""
    for value in secrets or []:
        MASKER.add(value)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    fmt = JsonFormatter(MASKER)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(fmt)
    root.addHandler(stderr)
    if log_dir is not None:
        fh = DailyFileHandler(log_dir, name)
        fh.setFormatter(fmt)
        root.addHandler(fh)
    root.setLevel(level)
    for noisy in ("urllib3", "apscheduler", "paramiko", "websocket"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
