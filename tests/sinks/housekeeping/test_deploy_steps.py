"""deploy/README.md's backup steps, run as written, on one machine: the observer host's block (users,
the chroot with its read-only bind mount from an fstab line with ``nofail``, deploy/sshd_backup.conf,
the [housekeeping] keys) and the backup PC's block (its user, keys, ``ssh-keyscan`` on a non-22
port), then a real OpenSSH sshd with the snippet's chroot and ``ForceCommand internal-sftp``, the
pull exactly as krx-backup-pull.service runs it, ``backup list`` verified, the re-check, and
``systemd-analyze verify`` of the shipped units.

What one machine cannot do is substituted and said so: paths move under a private test root
(the chroot under /srv, which must be root-owned all the way up), user names get a unique
suffix, systemctl lines are not run, and the Python commands run as root (the venv's interpreter
lives under /root here), the key and keyscan commands as the backup PC's user.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from observer.config import load_config
from tests.conftest import REPO, free_port, wait_for
from tests.sinks.housekeeping.conftest import SSHD, _banner, _keygen, write_day

README = REPO / "deploy" / "README.md"
DAY = date(2026, 1, 5)
OBSERVER = str(Path(sys.executable).parent / "observer")


def block(name: str) -> str:
    """The ```sh block that follows ``<!-- deploy-test: name -->`` in deploy/README.md."""
    text = README.read_text()
    m = re.search(rf"<!-- deploy-test: {name} -->\n```sh\n(.*?)```", text, re.S)
    assert m, f"deploy/README.md has no deploy-test block {name!r}"
    return m.group(1)


def substitute(script: str, table: list[tuple[str, str]]) -> str:
    """Plain replacements; a name (no ``/``) only as a whole word, so ``krx-backup`` the user
    becomes the test's user but ``krx-backup-pull.service`` stays a file name."""
    for old, new in table:
        if "/" in old or " " in old:
            script = script.replace(old, new)
        else:
            script = re.sub(rf"(?<![-\w/.]){re.escape(old)}(?![-\w.])", new, script)
    return script


def run_script(script: str, cwd: Path) -> None:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def unit_exec(unit: str, key: str, env: dict[str, str], table: list[tuple[str, str]]) -> list[str]:
    """The command line of `key` (ExecStart, ExecStartPost) in a shipped unit, as systemd expands it."""
    text = (REPO / "deploy" / unit).read_text().replace("\\\n", " ")
    m = re.search(rf"^{key}=(.*)$", text, re.M)
    assert m, f"{unit} has no {key}"
    line = substitute(m.group(1), table)
    for name, value in env.items():
        line = line.replace(f"${{{name}}}", value)
    return line.split()


@pytest.fixture
def machine(short_tmp: Path) -> Iterator[dict[str, str]]:
    """Unique names and paths; everything made under them is removed at the end."""
    tag = secrets.token_hex(3)
    names = {
        "tag": tag,
        "backup_user": f"kbk{tag}",
        "observer_user": f"kob{tag}",
        "pc_user": f"kpc{tag}",
        "chroot": f"/srv/krx-test-{tag}",
        "base": str(short_tmp),
    }
    subprocess.run(
        ["useradd", "--system", "--shell", "/usr/sbin/nologin", names["observer_user"]], check=True
    )
    try:
        yield names
    finally:
        subprocess.run(["umount", "-l", f"{names['chroot']}/backup"], capture_output=True, check=False)
        for user in (names["backup_user"], names["pc_user"], names["observer_user"]):
            subprocess.run(["userdel", "-r", user], capture_output=True, check=False)
            subprocess.run(["groupdel", user], capture_output=True, check=False)
        subprocess.run(["groupdel", names["backup_user"]], capture_output=True, check=False)
        shutil.rmtree(names["chroot"], ignore_errors=True)
        shutil.rmtree(f"/home/{names['backup_user']}", ignore_errors=True)


def test_the_documented_backup_steps_work_against_a_real_chrooted_sshd(machine: dict[str, str]) -> None:
    base = Path(machine["base"])
    bk, ob, pc = machine["backup_user"], machine["observer_user"], machine["pc_user"]
    chroot, port = machine["chroot"], free_port()
    os.chmod(base, 0o711)  # the backup PC's user must reach its home under it
    data, pc_home, pc_dest = base / "data", base / "pc-home", base / "pc-archive"
    config = base / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{data}"\nruntime_dir = "{base / "run"}"\n'
        f'universe_dir = "{base / "universe"}"\nlog_dir = "{base / "logs"}"\n'
    )
    paths = [
        ("/etc/ssh/sshd_config.d/krx-backup.conf", str(base / "sshd_snippet.conf")),
        ("/etc/krx-observer/observer.toml", str(config)),
        ("/etc/krx-observer/receipt_key.pub", str(pc_home / ".krx/receipt_key.pub")),
        ("/opt/krx-observer/.venv/bin/observer", OBSERVER),
        ("/opt/krx-observer/deploy/", f"{REPO}/deploy/"),
        ("/srv/krx-backup", chroot),
        ("/home/krx-backup", f"/home/{bk}"),
        ("/var/lib/krx-observer", str(data)),
        ("/var/lib/krx-archive", str(pc_home)),
        ("/srv/krx-archive", str(pc_dest)),
        ("/etc/krx-backup", str(base / "etc-krx-backup")),
        ("/etc/systemd/system/", str(base / "systemd") + "/"),
        ("/etc/fstab", str(base / "fstab")),
    ]
    names = [("krx-backup", bk), ("krx-observer", ob), ("krx-archive", pc)]
    not_here = [
        ("sshd -t && systemctl reload ssh", "true"),  # our own sshd below, checked with sshd -t
        ("mount /srv/krx-backup/backup", f"mount --fstab {base / 'fstab'} {chroot}/backup"),  # not /etc/fstab
        ("systemctl daemon-reload", "true"),
        ("systemctl enable --now krx-backup-pull.timer krx-backup-check.timer", "true"),
        ("ssh-keyscan -p 22 observer-host", f"ssh-keyscan -p {port} 127.0.0.1"),
    ]
    (base / "systemd").mkdir()

    # the observer host's block, as written
    host_script = substitute(block("observer-host"), not_here + paths + names)
    assert "nofail" in host_script and "bind,ro" in host_script
    run_script(host_script, base)
    # the installed snippet names the real user and chroot: the test's stand-ins instead
    snippet = base / "sshd_snippet.conf"
    snippet.write_text(substitute(snippet.read_text(), paths + names))
    mounted = subprocess.run(
        ["findmnt", "-n", "-o", "OPTIONS", f"{chroot}/backup"], capture_output=True, text=True
    )
    assert mounted.returncode == 0 and "ro" in mounted.stdout.split(","), mounted  # the bind mount, read-only
    st = os.stat(f"{chroot}/receipts")
    assert stat.S_IMODE(st.st_mode) == 0o2750 and st.st_uid == _uid(bk)
    # the backup PC's block, as written (its python-free commands as its own user)
    pc_script = substitute(block("backup-pc"), not_here + paths + names)
    pc_script = pc_script.replace("runuser -u krx-archive --", f"runuser -u {pc} --")
    (base / "etc-krx-backup").mkdir()
    # the host key must exist before ssh-keyscan: start sshd first (the host's block installed it)
    sshd = _start_sshd(base, port, chroot)
    try:
        run_script(pc_script, base)
        known = (pc_home / ".krx/known_hosts").read_text()
        assert known.startswith(f"[127.0.0.1]:{port} "), known  # what the pull looks up
        assert stat.S_IMODE((pc_home / ".krx").stat().st_mode) == 0o700
        assert (base / "systemd/krx-backup-pull.timer").exists()
        # the two manual copies of the README: the login key and the receipt key
        shutil.copy(pc_home / ".krx/id_ed25519.pub", f"/home/{bk}/.ssh/authorized_keys")
        cfg = load_config(config, env={})
        assert cfg.housekeeping.backup_group == bk and cfg.housekeeping.receipts_dir == f"{chroot}/receipts"

        # the observer host makes the day's package (modes from the config: group-readable)
        write_day(cfg, DAY)
        made = _observer(config, "backup", "create", "--day", "20260105", "--no-events")
        assert made.returncode == 0, made.stderr
        assert stat.S_IMODE((data / "backup/20260105").stat().st_mode) == 0o750

        # the backup PC's timer: the pull exactly as krx-backup-pull.service runs it, then its prune
        env = {"OBSERVER_HOST": "127.0.0.1", "OBSERVER_PORT": str(port)}
        pull = subprocess.run(
            unit_exec("krx-backup-pull.service", "ExecStart", env, paths + names),
            capture_output=True,
            text=True,
        )
        assert pull.returncode == 0, pull.stdout + pull.stderr + (base / "sshd.log").read_text()
        assert "verified 20260105" in pull.stdout and "signed receipt sent" in pull.stdout
        prune = subprocess.run(
            unit_exec("krx-backup-pull.service", "ExecStartPost", env, paths + names),
            capture_output=True,
            text=True,
        )
        assert prune.returncode == 0 and "0 copies deleted" in prune.stdout, prune.stdout + prune.stderr
        receipt = Path(f"{chroot}/receipts/20260105.json")
        assert stat.S_IMODE(receipt.stat().st_mode) == 0o640 and receipt.stat().st_gid == _gid(
            ob
        )  # -u 0027, setgid
        # the chroot keeps the packages read-only for the backup user
        ro = subprocess.run(
            ["sftp", "-q", "-b", "-", "-P", str(port), "-i", str(pc_home / ".krx/id_ed25519"),
             "-o", f"UserKnownHostsFile={pc_home / '.krx/known_hosts'}", f"{bk}@127.0.0.1"],
            input="rm /backup/20260105/manifest.json\n", capture_output=True, text=True,
        )  # fmt: skip
        assert ro.returncode != 0 and (data / "backup/20260105/manifest.json").exists()

        # the observer host, housekeeper not running: the receipt makes the day verified
        listed = _observer(config, "backup", "list")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert re.search(r"20260105 +[\d,]+ bytes +verified by ", listed.stdout), listed.stdout
        # the weekly re-check, as krx-backup-check.service runs it
        check = subprocess.run(
            unit_exec("krx-backup-check.service", "ExecStart", env, paths + names),
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0 and "1 copy checked, 0 damaged" in check.stdout, (
            check.stdout + check.stderr
        )
    finally:
        sshd.send_signal(signal.SIGTERM)
        sshd.wait(10)
    # the shipped units are valid systemd units (the observer binary path made real)
    units = base / "units"
    units.mkdir()
    for name in (
        "krx-backup-pull.service",
        "krx-backup-pull.timer",
        "krx-backup-check.service",
        "krx-backup-check.timer",
    ):
        (units / name).write_text(
            (REPO / "deploy" / name).read_text().replace("/opt/krx-observer/.venv/bin/observer", OBSERVER)
        )
    verify = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in units.iterdir())],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid


def _gid(group: str) -> int:
    import grp

    return grp.getgrnam(group).gr_gid


def _observer(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSERVER_", "KIS_", "TELEGRAM_"))}
    return subprocess.run(
        [OBSERVER, "--config", str(config), *args], capture_output=True, text=True, env=env, cwd=REPO
    )


def _start_sshd(base: Path, port: int, chroot: str) -> subprocess.Popen[bytes]:
    """The system sshd binary with a minimal main config that Includes the installed snippet."""
    host_key = base / "ssh_host_ed25519_key"
    _keygen(host_key)
    config = base / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {base / 'sshd.pid'}\n"
        "UsePAM no\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n"
        f"Include {base / 'sshd_snippet.conf'}\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    checked = subprocess.run([str(SSHD), "-t", "-f", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr  # `sshd -t` of the README
    assert f"ChrootDirectory {chroot}" in (base / "sshd_snippet.conf").read_text()
    log = (base / "sshd.log").open("wb")
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    wait_for(lambda: proc.poll() is not None or _banner(port), 10, 0.05, "sshd accepting connections")
    assert proc.poll() is None, (base / "sshd.log").read_text()
    return proc
