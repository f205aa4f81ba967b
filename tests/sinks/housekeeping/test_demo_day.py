"""The demo's own day, end to end on the session clock: the real pipeline records a few minutes of
its virtual day, then ``observer backup create`` (no --day: "today" on the config's clock, which
on a weekend is the demo's Monday, not the wall clock's Saturday) packages it, the backup PC pulls
it over a real sshd and signs the receipt, ``backup list`` shows it verified, and a restore of the
pulled copy verifies clean."""

from __future__ import annotations

import re
import tarfile
from datetime import datetime
from pathlib import Path

import pytest

from observer.clock import KST, SystemClock, parse_start_at
from sinks.housekeeping.backup_pull import PullTarget, pull
from tests.e2e.support import Pipeline
from tests.sinks.housekeeping.conftest import ReceiptKey, SshServer


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_demo_day_is_packaged_pulled_and_verified_on_the_session_clock(
    short_tmp: Path, sshd: SshServer, receipt_key: ReceiptKey
) -> None:
    p = Pipeline(short_tmp, f'[housekeeping]\nreceipt_public_key = "{receipt_key.public}"\n')
    with p.running():
        p.wait_filled()
    assert p.returncode == 0, p.stderr[-3000:]
    session_day = parse_start_at("09:29:50", SystemClock().now().date()).date()
    key = f"{session_day:%Y%m%d}"
    assert (p.data / f"system/events/kis-sim/{key}.jsonl").exists()  # the pipeline's own day
    wall_day = datetime.now(KST).date()

    made = p.observer("backup", "create", "--quiet-s", "0", "--no-events")
    assert made.returncode == 0, made.stdout + made.stderr
    assert f"backup/{key}" in made.stdout and "created" in made.stdout
    if session_day > wall_day:  # a weekend: the wall clock would have refused it as "after today"
        assert "after today" not in made.stdout + made.stderr
    # the simulator's data says so inside the backup, too (never taken for KIS data)
    # (partitions by their path; the per-day files without a provider dir — metrics, universe — by content)
    names: list[str] = []
    for tar in (p.data / "backup" / key).glob("*.tar.gz"):
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                if not m.isfile():
                    continue
                names.append(m.name)
                if "/kis-sim/" not in m.name:
                    assert m.name.split("/")[0] in ("metrics", "universe"), m.name
                    body = t.extractfile(m)
                    assert body is not None and b"kis-sim" in body.read(), m.name
    assert names, "empty backup"

    (p.data / "backup_receipts").mkdir(mode=0o700)
    target = PullTarget(
        sshd.host,
        sshd.port,
        sshd.user,
        sshd.client_key,
        sshd.known_hosts,
        str(p.data / "backup"),
        str(p.data / "backup_receipts"),
        receipt_key.private,
        timeout_s=10.0,
    )
    [pulled] = pull(target, short_tmp / "backup-pc")
    assert pulled.day == key and pulled.status == "verified" and pulled.ok, pulled.problems

    listed = p.observer("backup", "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert re.search(rf"{key} +[\d,]+ bytes +verified by ", listed.stdout), listed.stdout
    plan = p.observer("retention", "plan")
    assert f"today {session_day}" in plan.stdout  # retention, too, on the session clock

    restored = p.observer(
        "backup", "restore", key, "--from", str(short_tmp / "backup-pc"), "--to", str(short_tmp / "restored")
    )
    assert restored.returncode == 0 and "observer verify: OK" in restored.stdout, (
        restored.stdout + restored.stderr
    )
