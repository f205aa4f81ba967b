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
