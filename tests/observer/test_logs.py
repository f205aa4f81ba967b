import json
import logging
import subprocess
import sys
from pathlib import Path

from observer.logs import SecretMasker, setup_logging
from tests.conftest import REPO

SECRET = "PS-VERY-SECRET-APPKEY-123"


def test_masker_masks_values_and_token_shapes() -> None:
    m = SecretMasker([SECRET])
    text = m.mask(
        f'key={SECRET} "authorization": "Bearer eyJhbGciOi.JIUzI1NiJ9.abc" "approval_key": "abcd-1234-xyz"'
    )
    assert SECRET not in text
    assert "eyJhbGciOi" not in text
    assert "abcd-1234-xyz" not in text


def test_log_lines_are_json_and_masked_in_every_path(tmp_path: Path) -> None:
    # a child process so the root logger of the test runner is left alone
    code = f"""
import logging, sys
from pathlib import Path
from observer.logs import setup_logging
setup_logging("t", "INFO", Path({str(tmp_path)!r}), [{SECRET!r}])
log = logging.getLogger("observer.test")
log.info("calling with %s", {SECRET!r}, extra={{"headers": {{"appsecret": {SECRET!r}}}}})
try:
    raise RuntimeError("boom {SECRET}")
except RuntimeError:
    log.exception("failed")
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.strip().splitlines()
    files = list(tmp_path.glob("t-*.jsonl"))
    assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == oct(0o600)
    file_lines = files[0].read_text().strip().splitlines()
    assert len(lines) == 2 and file_lines == lines
    for line in lines:
        doc = json.loads(line)
        assert set(doc) == {"timestamp", "level", "logger", "message", "extra"}
        assert doc["timestamp"].endswith("+09:00")
        assert SECRET not in line
    assert "Traceback" in json.loads(lines[1])["extra"]["exception"]


def test_setup_logging_is_idempotent() -> None:
    setup_logging("x", "WARNING")
    setup_logging("x", "WARNING")
    assert len(logging.getLogger().handlers) == 1


def _child_logs_on_a_terminal(tmp_path: Path, env_format: str | None) -> tuple[str, list[str]]:
    """Run a child whose stderr is a real pseudo-terminal; return what the terminal showed and the file."""
    import os
    import pty

    code = f"""
import logging
from pathlib import Path
from observer.logs import setup_logging
setup_logging("writer", "INFO", Path({str(tmp_path)!r}), [{SECRET!r}])
logging.getLogger("sinks.writer").warning("rotated partition", extra={{"track": "scalp", "token": {SECRET!r}}})
"""
    env = dict(os.environ)
    env.pop("OBSERVER_LOG_FORMAT", None)
    if env_format:
        env["OBSERVER_LOG_FORMAT"] = env_format
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stderr=slave, stdout=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=30) == 0
    file_lines = next(tmp_path.glob("writer-*.jsonl")).read_text().splitlines()
    return b"".join(chunks).decode(), file_lines


def test_a_terminal_gets_human_lines_and_the_file_stays_json(tmp_path: Path) -> None:
    shown, file_lines = _child_logs_on_a_terminal(tmp_path, None)
    line = shown.strip()
    assert not line.startswith("{"), line
    assert "WARNING" in line and "\x1b[33m" in line  # coloured level
    assert "writer" in line and "rotated partition" in line and "track=scalp" in line
    assert SECRET not in shown
    assert len(file_lines) == 1 and json.loads(file_lines[0])["message"] == "rotated partition"
    assert SECRET not in file_lines[0]


def test_log_format_override_keeps_json_on_a_terminal(tmp_path: Path) -> None:
    shown, _ = _child_logs_on_a_terminal(tmp_path, "json")
    doc = json.loads(shown.strip())
    assert doc["message"] == "rotated partition"


def test_old_log_files_are_gzipped_after_7_days_and_deleted_after_30(tmp_path: Path) -> None:
    import gzip
    from datetime import date, timedelta

    from observer.logs import rotate_old_logs

    today = date(2026, 12, 5)

    def name(days_ago: int) -> str:
        return f"writer-{(today - timedelta(days=days_ago)):%Y%m%d}.jsonl"

    for days_ago in (0, 7, 8, 30, 31):
        (tmp_path / name(days_ago)).write_text(f'{{"n": {days_ago}}}\n')
    (tmp_path / (name(40) + ".gz")).write_bytes(gzip.compress(b"old\n"))
    (tmp_path / name(9).replace("writer", "monitor")).write_text("other process\n")
    rotate_old_logs(tmp_path, "writer", today)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(
        [name(0), name(7), name(8) + ".gz", name(30) + ".gz", name(9).replace("writer", "monitor")]
    )
    assert gzip.decompress((tmp_path / (name(8) + ".gz")).read_bytes()) == b'{"n": 8}\n'
    assert oct((tmp_path / (name(8) + ".gz")).stat().st_mode & 0o777) == oct(0o600)
