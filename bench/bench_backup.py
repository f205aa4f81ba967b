"""Backup package: time and throughput to package a realistic day, and SFTP pull + verify on loopback.

A day at full size is ~4,000 x 39 swing lines, 41 x 2 x 19,800 scalp samples and as many raw frames
(~2.5 GB of JSONL); the bench writes a ``BENCH_SCALE`` fraction of it (default 0.05) with realistic
lines (random prices and sizes, real PatternRecord / RawFrameRecord shapes) and extrapolates.

References measured in the same run, so the ratios survive a noisy machine:
* packaging: bare ``zlib`` (same level) + SHA-256 over the same bytes, single thread;
* pull: the OpenSSH ``sftp`` client fetching the same package files (if /usr/bin/sftp exists).

    .venv/bin/python bench/bench_backup.py
    BENCH_SCALE=0.2 .venv/bin/python bench/bench_backup.py
"""

from __future__ import annotations

import getpass
import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import date, datetime, timedelta
from pathlib import Path

import msgspec

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from observer.clock import KST  # noqa: E402
from observer.config import Config, data_dir, decode_config  # noqa: E402
from observer.schema import (  # noqa: E402
    ContractMeta,
    Instrument,
    Interpretation,
    MarketDataContract,
    PatternRecord,
    Quality,
    RawFrameRecord,
    SchemaInfo,
)
from sinks.housekeeping.backup import create_package  # noqa: E402
from sinks.housekeeping.backup_pull import PullTarget, pull  # noqa: E402
from sinks.housekeeping.layout import ensure_dir, package_dir, receipts_dir  # noqa: E402
from sinks.housekeeping.manifest import verify_package  # noqa: E402
from sinks.housekeeping.receipts import ingest_receipts  # noqa: E402

DAY = date(2026, 1, 5)
FULL = {"swing": 4_000 * 39, "scalp": 41 * 2 * 19_800, "raw": 41 * 2 * 19_800}
_enc = msgspec.json.Encoder()


def _record(rng: random.Random, i: int, track: str, at: datetime) -> bytes:
    price = rng.randrange(4_000, 900_000)
    inst = Instrument(
        symbol=f"{rng.randrange(1, 999_999):06d}",
        timestamp=at,
        received_at=at + timedelta(milliseconds=rng.randrange(5, 80)),
        price={"open": price - 50, "high": price + 100, "low": price - 120, "close": price},
        volume=rng.randrange(1_000, 50_000_000),
        bid_price=price - 10,
        ask_price=price + 10,
        bid_size=rng.randrange(1, 90_000),
        ask_size=rng.randrange(1, 90_000),
        prev_close=price - rng.randrange(-5_000, 5_000),
        trade_count=rng.randrange(0, 40) if track == "scalp" else None,
        window_volume=rng.randrange(0, 90_000) if track == "scalp" else None,
        vwap=price + rng.random() if track == "scalp" else None,
        window_start=at if track == "scalp" else None,
        window_end=at + timedelta(milliseconds=500) if track == "scalp" else None,
        sweep_id=f"{at:%Y%m%dT%H%M}" if track == "swing" else None,
    )
    rec = PatternRecord(
        record_id=f"{track}-{inst.symbol}-{i}",
        session_id="20260105-kis",
        generated_at=at,
        observation=MarketDataContract(meta=ContractMeta("kis", "KOSPI", at), instruments=[inst]),
        schema=SchemaInfo(version="1.0", field_count=7),
        quality=Quality(validation_passed=True, guard_passed=True, quality_flag="normal"),
        interpretation=Interpretation(
            mitigation_level=0,
            track="scalp" if track == "scalp" else "swing",
            slot_number=i % 41 if track == "scalp" else None,
        ),
    )
    return _enc.encode(rec)


def _raw(rng: random.Random, i: int, at: datetime) -> bytes:
    fields = "^".join(str(rng.randrange(0, 10**7)) for _ in range(45))
    rec = RawFrameRecord(
        record_id=f"raw-run1-{i}",
        provider="kis",
        market="KOSPI",
        received_at=at,
        tr_id="H0STCNT0",
        frame=f"0|H0STCNT0|001|{rng.randrange(1, 999_999):06d}^{fields}",
    )
    return _enc.encode(rec)


def write_day(cfg: Config, scale: float) -> int:
    rng = random.Random(7)
    root = data_dir(cfg)
    total = 0
    start = datetime(2026, 1, 5, 9, 0, tzinfo=KST)
    for track, full in FULL.items():
        n = int(full * scale)
        hours = 7 if track == "swing" else 6
        per_file = max(1, n // hours)
        for h in range(hours):
            name = f"{9 + h:02d}_00.jsonl" if track != "scalp" else f"{9 + h:02d}_30_00.jsonl"
            path = root / track / "kis" / "KOSPI" / "20260105" / name
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            at = start + timedelta(hours=h)
            lines = [
                (
                    _raw(rng, h * per_file + i, at)
                    if track == "raw"
                    else _record(rng, h * per_file + i, track, at)
                )
                for i in range(per_file)
            ]
            data = b"\n".join(lines) + b"\n"
            path.write_bytes(data)
            total += len(data)
    past = time.time() - 3_600
    for p in root.rglob("*.jsonl"):
        os.utime(p, (past, past))
    return total


def reference_zlib_sha(cfg: Config, level: int) -> float:
    """Seconds for zlib + sha256 over every archive file, single thread, no tar."""
    t0 = time.perf_counter()
    for p in sorted(data_dir(cfg).rglob("*.jsonl")):
        comp = zlib.compressobj(level, zlib.DEFLATED, 31)
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
                comp.compress(chunk)
        comp.flush()
    return time.perf_counter() - t0


class Sshd:
    def __init__(self, base: Path):
        self.base = base
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> bool:
        if not Path("/usr/sbin/sshd").exists() or os.geteuid() != 0:
            return False
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for name in ("host_key", "client_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.base / name)], check=True
            )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        shutil.copy(self.base / "client_key.pub", self.base / "authorized_keys")
        conf = self.base / "sshd_config"
        conf.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.base / 'host_key'}\n"
            f"PidFile {self.base / 'sshd.pid'}\nAuthorizedKeysFile {self.base / 'authorized_keys'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            f"AllowUsers {getpass.getuser()}\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
        )
        kind, blob = (self.base / "host_key.pub").read_text().split(" ")[:2]
        (self.base / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {kind} {blob}\n")
        self.proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)], stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(8).startswith(b"SSH-"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)  # polling an external server's port; there is nothing to wait on
        return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(5)


def main() -> None:
    scale = float(os.environ.get("BENCH_SCALE", "0.05"))
    base = Path(tempfile.mkdtemp(prefix="obs-bb-", dir="/tmp"))
    try:
        receipt_key = base / "receipt_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(receipt_key)], check=True)
        cfg = decode_config(
            f'[paths]\ndata_dir = "{base / "data"}"\nuniverse_dir = "{base / "universe"}"\n'
            f'log_dir = "{base / "logs"}"\nruntime_dir = "{base / "run"}"\n'
            f'[housekeeping]\nreceipt_public_key = "{receipt_key}.pub"\n',
            "<bench>",
        )
        t0 = time.perf_counter()
        size = write_day(cfg, scale)
        print(
            f"day at scale {scale}: {size / 1e6:.1f} MB of JSONL written in {time.perf_counter() - t0:.1f} s"
        )
        level = cfg.housekeeping.backup_compress_level
        ref_s = reference_zlib_sha(cfg, level)
        result = create_package(cfg, DAY, now=datetime(2026, 1, 5, 21, 0, tzinfo=KST))
        pkg_s = result.duration_s
        print(
            f"package: {result.lines:,d} lines, {result.bytes_in / 1e6:.1f} MB -> {result.bytes_out / 1e6:.1f} MB "
            f"(x{result.bytes_in / max(result.bytes_out, 1):.1f}) in {pkg_s:.2f} s = {result.bytes_in / pkg_s / 1e6:.1f} MB/s"
        )
        print(
            f"  reference zlib(level {level}) + sha256, same bytes: {ref_s:.2f} s "
            f"= {result.bytes_in / ref_s / 1e6:.1f} MB/s; package/reference = {pkg_s / ref_s:.2f}x"
        )
        print(
            f"  full day extrapolated: ~{size / scale / 1e9:.2f} GB -> packaged in ~{pkg_s / scale / 60:.1f} min"
        )
        t0 = time.perf_counter()
        report = verify_package(package_dir(cfg, DAY))
        ver_s = time.perf_counter() - t0
        assert report.ok, report.problems
        print(
            f"verify (files + every tar member): {ver_s:.2f} s = {result.bytes_in / ver_s / 1e6:.1f} MB/s of archive"
        )
        sshd = Sshd(base)
        if not sshd.start():
            print("sftp pull: skipped (needs root and /usr/sbin/sshd)")
            return
        try:
            ensure_dir(receipts_dir(cfg))
            target = PullTarget(
                "127.0.0.1",
                sshd.port,
                getpass.getuser(),
                base / "client_key",
                base / "known_hosts",
                str(package_dir(cfg, DAY).parent),
                str(receipts_dir(cfg)),
                receipt_key,
            )
            t0 = time.perf_counter()
            [res] = pull(target, base / "pc")
            pull_s = time.perf_counter() - t0
            assert res.status == "verified", res.problems
            print(
                f"sftp pull + verify: {res.bytes / 1e6:.1f} MB in {pull_s:.2f} s = {res.bytes / pull_s / 1e6:.1f} MB/s; "
                f"full day ~{pull_s / scale:.0f} s"
            )
            t0 = time.perf_counter()
            [outcome] = ingest_receipts(cfg, datetime(2026, 1, 5, 22, 0, tzinfo=KST))
            rec_s = time.perf_counter() - t0
            assert outcome.kind == "verified", outcome.message
            print(
                f"receipt check on the observer host (signature + download proof over the package): "
                f"{rec_s:.2f} s = {result.bytes_out / rec_s / 1e6:.1f} MB/s of package; full day ~{rec_s / scale:.0f} s"
            )
            if shutil.which("sftp"):
                batch = base / "batch"
                (base / "ref").mkdir()
                batch.write_text(f"get {package_dir(cfg, DAY)}/* {base / 'ref'}/\n")
                t0 = time.perf_counter()
                subprocess.run(
                    [
                        "sftp",
                        "-q",
                        "-b",
                        str(batch),
                        "-P",
                        str(sshd.port),
                        "-i",
                        str(base / "client_key"),
                        "-o",
                        f"UserKnownHostsFile={base / 'known_hosts'}",
                        "-o",
                        "StrictHostKeyChecking=yes",
                        f"{getpass.getuser()}@127.0.0.1",
                    ],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                ref = time.perf_counter() - t0
                print(
                    f"  reference OpenSSH sftp get, same files: {ref:.2f} s = {res.bytes / ref / 1e6:.1f} MB/s; "
                    f"pull+verify/reference = {pull_s / ref:.2f}x"
                )
        finally:
            sshd.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
