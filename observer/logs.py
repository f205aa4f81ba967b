"""Logging: JSON lines ``{timestamp, level, logger, message, extra}`` to a daily file per process and
to stderr; a compact human line on stderr when stderr is a terminal.

* Files (``<log_dir>/<name>-YYYYMMDD.jsonl``, KST date, 0600) and journald (stderr is not a terminal
  under systemd) always get JSON lines. A person running ``make run`` gets
  ``09:31:02.123 INFO  writer     rotated partition  track=scalp path=...`` in colour instead.
  ``OBSERVER_LOG_FORMAT=json|human`` overrides the choice (workers inherit the supervisor's stderr
  and its environment, so one switch covers the whole tree).
* A process's own files are rotated when its day changes: gzip after ``GZIP_AFTER_DAYS`` (7),
  deleted after ``DELETE_AFTER_DAYS`` (30).
* Every line passes through `SecretMasker`, which replaces the values of every configured secret and
  anything shaped like a bearer token or approval key with ``***`` — in the message, in ``extra``
  and in exception text alike, in both formats.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import sys
import traceback
from datetime import date, datetime
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
GZIP_AFTER_DAYS = 7
DELETE_AFTER_DAYS = 30
FORMAT_ENV = "OBSERVER_LOG_FORMAT"


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
        extra = _extra_of(record)
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


_COLOURS = {
    "DEBUG": "\x1b[2m",
    "INFO": "\x1b[32m",
    "WARNING": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "CRITICAL": "\x1b[1;31m",
}
_RESET = "\x1b[0m"


def _extra_of(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STD_ATTRS and not k.startswith("_")}


class HumanFormatter(logging.Formatter):
    """One short line per record: KST time, level, process name, message, ``key=value`` extras."""

    def __init__(self, masker: SecretMasker, process: str, *, colour: bool):
        super().__init__()
        self.masker = masker
        self.process = process
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, KST).strftime("%H:%M:%S.%f")[:-3]
        level = record.levelname
        level = f"{_COLOURS.get(level, '')}{level:<8}{_RESET}" if self.colour else f"{level:<8}"
        extras = " ".join(f"{k}={_short(v)}" for k, v in _extra_of(record).items())
        line = f"{at} {level} {self.process:<15} {record.getMessage()}"
        if extras:
            line += "  " + extras
        if record.exc_info:
            line += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return self.masker.mask(line)


def _short(value: Any) -> str:
    text = (
        value if isinstance(value, str) else _json.encode(msgspec.to_builtins(value, enc_hook=str)).decode()
    )
    return text if len(text) <= 120 else text[:117] + "..."


def stderr_is_human(stream: Any = None) -> bool:
    """Human lines when stderr is a terminal, unless ``OBSERVER_LOG_FORMAT`` says otherwise."""
    choice = os.environ.get(FORMAT_ENV, "").strip().lower()
    if choice in ("json", "human"):
        return choice == "human"
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def rotate_old_logs(directory: Path, name: str, today: date) -> None:
    """gzip ``<name>-YYYYMMDD.jsonl`` older than 7 days, delete those (plain or gzipped) older than 30."""
    for path in directory.glob(f"{name}-[0-9]*.jsonl*"):
        stem = path.name[len(name) + 1 :].split(".", 1)[0]
        try:
            day = datetime.strptime(stem, "%Y%m%d").date()
        except ValueError:
            continue
        age = (today - day).days
        try:
            if age > DELETE_AFTER_DAYS:
                path.unlink()
            elif age > GZIP_AFTER_DAYS and path.suffix == ".jsonl":
                target = path.with_name(path.name + ".gz")
                partial = target.with_name(target.name + ".part")
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with (
                    path.open("rb") as src,
                    os.fdopen(fd, "wb") as raw,
                    gzip.GzipFile(fileobj=raw, mode="wb") as gz,
                ):
                    shutil.copyfileobj(src, gz)
                os.replace(partial, target)
                path.unlink()
        except OSError as e:  # another process of the same name may race us; the next day retries
            logging.getLogger("observer.logs").warning("log rotation of %s failed: %s", path.name, e)


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
        rotate_old_logs(self.directory, self.name_prefix, datetime.strptime(day, "%Y%m%d").date())

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
    if stderr_is_human():
        stderr.setFormatter(HumanFormatter(MASKER, name, colour=sys.stderr.isatty()))
    else:
        stderr.setFormatter(fmt)
    root.addHandler(stderr)
    if log_dir is not None:
        fh = DailyFileHandler(log_dir, name)
        fh.setFormatter(fmt)
        root.addHandler(fh)
    root.setLevel(level)
    for noisy in ("urllib3", "apscheduler", "paramiko", "websocket"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
