"""The JetStream sink against a real nats-server: kill -9 and restart of the server and of the sink
under load -> the stream holds every archived line exactly once, and ``observer archive
from-jetstream`` rebuilds a byte-identical, verify-clean archive."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import zmq
from click.testing import CliRunner

from observer.bus import context, stream_subject
from observer.cli import cli
from observer.config import ConfigError
from observer.schema import ArchiveRecord
from testkit.config import make_config
from testkit.records import DAY, record
from tests.conftest import terminate, wait_for
from tests.sinks.jetstream.support import (
    NatsServer,
    archive_files,
    line_count,
    start_sink,
    stream_messages,
)
from tests.sinks.writer.conftest import WRITER_TOML, Rig
from tests.sinks.writer.support import Producer

RATE_PER_S = 200.0
STREAM = "TEST_ARCHIVE"


def load(i: int) -> ArchiveRecord:
    """Scalp lines of one symbol, a swing line every 41st and a raw frame every 13th; time runs 60x."""
    at = DAY + timedelta(seconds=i * 30 / 41)
    if i % 41 == 40:
        return record("swing", f"swing:000660:{i}", at)
    if i % 13 == 0:
        return record("raw", f"raw:{i}", at, market="KOSDAQ")
    return record("scalp", f"scalp:005930:{i}", at)


@pytest.fixture
def nats_server(short_tmp: Path) -> Iterator[NatsServer]:
    server = NatsServer(short_tmp)
    yield server
    server.stop()


def _toml(url: str) -> str:
    return WRITER_TOML + (
        f'[jetstream]\nenabled = true\nurl = "{url}"\nstream = "{STREAM}"\n'
        "publish_timeout_s = 2.0\nduplicate_window_s = 600.0\n"
    )


def test_subjects_are_the_feed_topics_under_the_prefix() -> None:
    assert (
        stream_subject("archive", "scalp", "KOSPI", "scalp:005930:x", b"{}") == "archive.scalp.KOSPI.005930"
    )
    assert stream_subject("archive", "raw", "KOSDAQ", "r1", b"{}") == "archive.raw.KOSDAQ"
    line = b'{"record_id":"e","type":"gap_marker"}'
    assert stream_subject("a.b", "system", "", "e", line) == "a.b.event.gap_marker"
    assert stream_subject("archive", "swing", "KO SPI", "bad-id", b"{}") == "archive.swing.KO_SPI._"


@pytest.mark.timeout(180)
def test_kill_server_and_sink_under_load_stream_exactly_once_and_rebuild_identical(
    short_tmp: Path, nats_server: NatsServer
) -> None:
    ctx: zmq.Context[Any] = context()
    rig = Rig(short_tmp, _toml(nats_server.url))
    sinks = []

    def sink() -> Any:
        proc = start_sink(short_tmp, rig.config_path, str(len(sinks)))
        sinks.append(proc)
        return proc

    def stream_grows(beyond: int) -> bool:
        return stream_messages(nats_server.url, STREAM) > beyond

    nats_server.start()
    writer = rig.start_writer()
    current = sink()
    prod = Producer(ctx, rig.cfg, transmit_on_send=False, hold_above_bytes=16 * 1024 * 1024)
    prod.start(load, RATE_PER_S, count=1_000_000)
    try:
        wait_for(lambda: stream_grows(100), 30, interval_s=0.2, what="lines in the stream")
        for round_ in range(2):
            # the server dies: the writer keeps acknowledging upstream, the sink keeps retrying
            nats_server.kill()
            acked = prod.sender.acked
            wait_for(lambda a=acked: prod.sender.acked > a + 100, 20, what="archive acks without NATS")
            nats_server.start()
            before = stream_messages(nats_server.url, STREAM)
            wait_for(lambda b=before: stream_grows(b + 100), 30, interval_s=0.2, what="stream resumes")
            # the sink dies mid-publish: the writer resends to the next one
            current.send_signal(signal.SIGKILL)
            assert current.wait(10) == -signal.SIGKILL
            acked = prod.sender.acked
            wait_for(
                lambda a=acked: prod.sender.acked > a + 100, 20, what=f"archive acks, sink down {round_}"
            )
            current = sink()
            before = stream_messages(nats_server.url, STREAM)
            wait_for(lambda b=before: stream_grows(b + 100), 30, interval_s=0.2, what="stream resumes")
        # real load whatever the machine's speed: the faults above can pass in a few seconds
        wait_for(lambda: prod.sender.acked > 1_200, 30, what="more than a thousand lines archived")
        total = prod.stop_schedule()
        wait_for(prod.all_acked, 30, what="everything archived")
        files = archive_files(rig.root)
        lines = line_count(files)
        wait_for(
            lambda: stream_messages(nats_server.url, STREAM) >= lines,
            60,
            interval_s=0.2,
            what="stream caught up",
        )
        assert terminate(current) == 0
        assert terminate(writer) == 0, rig.output()[-3000:]
    finally:
        prod.close()
        for proc in [*sinks, *rig.procs]:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    files = archive_files(rig.root)  # the writer's shutdown may add nothing; read again after it
    assert total > 1_000 and line_count(files) >= total, (total, line_count(files))
    in_stream = stream_messages(nats_server.url, STREAM)
    assert in_stream == line_count(files), (in_stream, line_count(files))  # every line, exactly once

    out = short_tmp / "rebuilt"
    runner = CliRunner()
    result = runner.invoke(
        cli, ["--config", str(rig.config_path), "archive", "from-jetstream", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert " 0 duplicate(s); ok" in result.output, result.output
    rebuilt = archive_files(out)
    assert sorted(rebuilt) == sorted(files)
    assert [k for k in files if rebuilt[k] != files[k]] == []  # byte-identical
    result = runner.invoke(cli, ["verify", str(out)])
    assert result.exit_code == 0, result.output


def test_rebuild_refuses_a_non_empty_target(short_tmp: Path, nats_server: NatsServer) -> None:
    rig = Rig(short_tmp, _toml(nats_server.url))
    out = short_tmp / "busy"
    out.mkdir()
    (out / "x").write_text("x")
    result = CliRunner().invoke(
        cli, ["--config", str(rig.config_path), "archive", "from-jetstream", "--out", str(out)]
    )
    assert result.exit_code == 2 and "not empty" in result.output


@pytest.mark.timeout(180)
def test_writer_kill9_under_load_stream_still_exactly_once(short_tmp: Path, nats_server: NatsServer) -> None:
    """The writer's replay buffer dies with it: its stream marks make the next writer resend the
    lines the sink had not acknowledged (JetStream drops what it already holds)."""
    ctx: zmq.Context[Any] = context()
    rig = Rig(short_tmp, _toml(nats_server.url))
    nats_server.start()
    sink = start_sink(short_tmp, rig.config_path, "0")
    sinks = [sink]
    prod = Producer(ctx, rig.cfg, transmit_on_send=False, hold_above_bytes=16 * 1024 * 1024)
    prod.start(load, RATE_PER_S, count=1_000_000)
    try:
        for n in range(3):
            writer = rig.start_writer()
            acked = prod.sender.acked
            wait_for(lambda a=acked: prod.sender.acked > a + 50, 30, what=f"writer {n} archives")
            # the sink dies: archived lines wait in the writer's buffer for its ack ...
            sink.send_signal(signal.SIGKILL)
            assert sink.wait(10) == -signal.SIGKILL
            acked = prod.sender.acked
            wait_for(lambda a=acked: prod.sender.acked > a + 50, 30, what=f"writer {n} archives, no sink")
            # ... and die with the writer
            writer.send_signal(signal.SIGKILL)
            assert writer.wait(10) == -signal.SIGKILL
            sink = start_sink(short_tmp, rig.config_path, str(n + 1))
            sinks.append(sink)
        writer = rig.start_writer()
        # real load whatever the machine's speed: the faults above can pass in a few seconds
        wait_for(lambda: prod.sender.acked > 600, 30, what="more than 600 lines archived")
        total = prod.stop_schedule()
        wait_for(prod.all_acked, 30, what="everything archived")
        lines = line_count(archive_files(rig.root))
        wait_for(
            lambda: stream_messages(nats_server.url, STREAM) >= lines,
            60,
            interval_s=0.2,
            what="stream caught up",
        )
        assert terminate(writer) == 0, rig.output()[-3000:]
        assert terminate(sink) == 0
    finally:
        prod.close()
        for proc in [*sinks, *rig.procs]:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    files = archive_files(rig.root)
    in_stream = stream_messages(nats_server.url, STREAM)
    assert total > 500 and in_stream == line_count(files), (total, in_stream, line_count(files))
    out = short_tmp / "rebuilt"
    result = CliRunner().invoke(
        cli, ["--config", str(rig.config_path), "archive", "from-jetstream", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert archive_files(out) == files


def test_config_refuses_credentials_in_the_url(short_tmp: Path) -> None:
    with pytest.raises(ConfigError, match="credentials"):
        make_config(short_tmp, '[jetstream]\nurl = "nats://u:secret@127.0.0.1:4222"\n')
