"""The configuration tree: one frozen msgspec Struct per section, unknown keys forbidden.

Units live in field names (`_ms`, `_s`, `_krw`); times of day are `datetime.time` (KST, naive),
validated when the file is loaded (`observer.config.load`).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import date, time
from typing import Annotated, Literal

import msgspec


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file, key and expected type."""


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


def _check_window(section: str, start: time, end: time) -> None:
    if end <= start:
        raise ValueError(f"{section}.end {end:%H:%M:%S} is not after {section}.start {start:%H:%M:%S}")


class PathsConfig(_Section, frozen=True):
    data_dir: str = "data/observer"
    runtime_dir: str = ""  # empty: $XDG_RUNTIME_DIR/krx-observer or /tmp/krx-observer-<uid>
    universe_dir: str = "config/universe"
    log_dir: str = ""  # empty: <data_dir>/logs
    # under the real clock a data dir on tmpfs/ramfs (memory: gone at reboot) refuses to start;
    # true accepts it (tests only)
    allow_volatile_data_dir: bool = False


class BusConfig(_Section, frozen=True):
    # Endpoint overrides by name (ingest, ingest_ack, archive, archive_ack, events_in, events_out, feed,
    # replay_feed, control); anything not given is ipc://<runtime_dir>/<name>.sock
    endpoints: dict[str, str] = {}
    send_hwm: int = 10_000
    recv_hwm: int = 10_000  # bounds what a paused receiver keeps reading into its zmq queue
    replay_buffer_bytes: int = 64 * 1024 * 1024
    resend_after_ms: int = 1_000
    resend_max_ms: int = 8_000
    ack_republish_ms: int = 1_000
    linger_ms: int = 0
    # CURVE on tcp:// endpoints (observer.curve, `observer keys gen`): this host's key pair (the
    # .key_secret file), the public key (.key) of the host its tcp connects go to, and the directory
    # of the public keys allowed to connect to its tcp binds
    curve_secret_key_file: str = ""
    curve_server_key_file: str = ""
    curve_authorized_dir: str = ""
    # split hosts: the other host's events_export (tcp://), whose own events (slots, mitigation,
    # ctl; heartbeats and stats the other way) this host's forwarder also hands to its subscribers.
    # Each host may import the other's: an export carries only the events of its own host.
    events_upstream: str = ""
    events_upstream_key_file: str = ""  # that host's public key (default: curve_server_key_file)

    def __post_init__(self) -> None:
        tcp = sorted(name for name, address in self.endpoints.items() if address.startswith("tcp://"))
        if self.events_upstream.startswith("tcp://"):
            tcp.append("events_upstream")
        if tcp and not self.curve_secret_key_file:
            raise ValueError(f"tcp endpoints {tcp} need curve_secret_key_file (observer keys gen)")


class ClockConfig(_Section, frozen=True):
    mode: Literal["real", "session"] = "real"
    start_at: str = "09:29:40"  # session mode: virtual KST time at the anchor (HH:MM[:SS] or RFC 3339)
    speed: float = 1.0


class LoggingConfig(_Section, frozen=True):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class KisConfig(_Section, frozen=True):
    rest_url: str = "https://openapi.koreainvestment.com:9443"
    ws_url: str = "ws://ops.koreainvestment.com:21000"
    mock_rest_url: str = "https://openapivts.koreainvestment.com:29443"
    mock_ws_url: str = "ws://ops.koreainvestment.com:31000"
    master_url: str = "https://new.real.download.dws.co.kr/common/master"
    rate_limit_per_s: float = 18.0  # real accounts: 20/s per app key, kept with a margin
    mock_rate_limit_per_s: float = 1.8  # mock accounts: 2/s
    request_timeout_s: float = 2.0
    max_tries: int = 3
    token_cache_path: str = ""  # empty: <data_dir>/state/kis_token.json
    token_refresh_margin_s: int = 3_600


MAX_SIM_KEYS = 16


def sim_accounts(app_key: str, app_secret: str, keys: int) -> list[tuple[str, str]]:
    """The simulator's `keys` accounts as (app key, app secret): the configured pair first, then
    pairs derived from it deterministically, shaped like it (KIS: 36-character key, 180-character
    secret), so the simulator and the collectors agree without sharing anything else."""
    out = [(app_key, app_secret)]
    for n in range(2, keys + 1):
        seed = f"{app_key}:{app_secret}:{n}".encode()
        key = app_key[:2] + hashlib.sha256(seed).hexdigest().upper()[: max(len(app_key) - 2, 0)]
        blocks = b"".join(
            hashlib.sha512(seed + bytes([i])).digest() for i in range(len(app_secret) // 64 + 1)
        )
        out.append((key, base64.b64encode(blocks).decode()[: len(app_secret)]))
    return out


class SimConfig(_Section, frozen=True):
    """The local KIS simulator. It runs, and the collectors talk to it, only with ``enabled = true``
    (config/demo.toml); everything recorded from it is archived as provider ``kis-sim``."""

    enabled: bool = False
    host: str = "127.0.0.1"
    rest_port: int = 18_443
    ws_port: int = 18_000
    admin_port: int = 18_444
    seed: int = 20_260_101
    symbol_count: int = 4_000
    account: Literal["real", "mock"] = "real"
    # shaped like KIS's (36-character app key, 180-character secret) so third-party clients take them
    app_key: str = "PSSIMULATOR1RZzefeSdYB0DDW21jnxaRtNf"
    app_secret: str = (
        "CuBIbf2mjmFo3h6Moc/XQ7uHgx9eWydg8+VtJdYMl1+gcX1SVWeUTjI4xQuy+vpS4fy4dxejia8BQZAClrQgVnOrJA3g4iGS"
        "bMfP/5aRnDaWtI5nTCyXD6yvOYN+JS6LjQljzfTazk6/lSlUvP+3yYtaFiUnxGsZ7xJHStAvQtcW7XAhn8Pb"
    )
    # app keys the simulator serves, each with its own rate limit: the first is app_key/app_secret,
    # the others derived from them (`sim_accounts`); the collectors use every one
    keys: Annotated[int, msgspec.Meta(ge=1, le=MAX_SIM_KEYS)] = 1
    # multiplies every trade rate of the simulated market (x10, x50: stress runs)
    activity_scale: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    # KRX holidays only the simulated broker knows (its chk-holiday says closed), on top of
    # [calendar].holidays: how a holiday the config does not list reaches every worker is tested
    holidays: list[date] = []

    def accounts(self) -> list[tuple[str, str]]:
        """(app key, app secret) of each of the `keys` accounts, the configured one first."""
        return sim_accounts(self.app_key, self.app_secret, self.keys)


class ProviderConfig(_Section, frozen=True):
    name: Literal["kis", "kiwoom", "upbit", "ib"] = "kis"
    markets: list[str] = msgspec.field(default_factory=lambda: ["KOSPI", "KOSDAQ"])


class CalendarConfig(_Section, frozen=True):
    holidays: list[date] = []  # YYYY-MM-DD, the fallback when chk-holiday cannot be reached
    use_chk_holiday: bool = True


class UniverseConfig(_Section, frozen=True):
    min_prev_close_krw: int = 4_000
    group_codes: list[str] = msgspec.field(default_factory=lambda: ["ST"])
    exclude_halted: bool = True
    exclude_liquidation: bool = True
    build_at: time = time(8, 30)


class TrackAConfig(_Section, frozen=True):
    start: time = time(9, 0)
    end: time = time(15, 30)
    sweep_interval_min: int = 10
    symbols_per_call: int = 30

    def __post_init__(self) -> None:
        _check_window("track_a", self.start, self.end)
        if self.sweep_interval_min <= 0:
            raise ValueError(f"track_a.sweep_interval_min must be > 0, got {self.sweep_interval_min}")


class TrackBConfig(_Section, frozen=True):
    start: time = time(9, 30)
    end: time = time(15, 0)
    max_slots: int = 41  # registrations per WebSocket session (KIS: 41 per app key)
    # WebSocket sessions (one per app key): 0 = as many as there are keys ([sim] keys on the
    # simulator, KIS_APP_KEY_n in production). Set it where the core runs without the keys (split hosts)
    sessions: Annotated[int, msgspec.Meta(ge=0, le=16)] = 0
    # a session down this long while another key's is up: its key has failed, its symbols move
    key_failover_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    min_dwell_s: float = 120.0
    receive_watchdog_s: float = 30.0
    reconnect_backoff_s: list[float] = msgspec.field(
        default_factory=lambda: [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0]
    )
    healthy_reset_s: float = 60.0
    pause_after_failure_s: float = 300.0
    silent_symbol_s: float = 60.0
    session_margin_s: float = 0.0
    # ws-collector
    connect_timeout_s: float = 10.0
    ack_timeout_s: float = 2.0  # an unanswered (un)subscribe is sent again after this
    cap_backoff_s: float = 60.0  # a symbol refused with OPSP0008 / bad tr_key waits this long
    session_in_use_backoff_s: float = 65.0  # OPSP8996: the old session may still be closing
    frame_queue_max: int = 50_000  # frames between the socket reader and the loop thread
    stats_interval_s: float = 5.0
    rejection_event_interval_s: float = 10.0

    def __post_init__(self) -> None:
        _check_window("track_b", self.start, self.end)


class CoreConfig(_Section, frozen=True):
    max_jump_ticks: int = 50
    stale_snapshot_s: float = 1_200.0
    max_clock_skew_s: float = 5.0
    rejection_event_interval_s: float = 10.0
    sample_grace_ms: int = 300
    session_margin_s: float = 60.0  # exchange time may fall this far outside track_a.start..end
    restart_catchup_ms: int = 2_500  # after a restart, pre-restart windows wait this long for resends
    # a whole feed silent past the grace (a collector that died says nothing): windows after its
    # last frame wait this long for the supervisor's word, so an outage's windows are flagged gap
    feed_silence_hold_ms: int = 2_000
    resume_lookback_s: float = 900.0  # a resumed slot without a durable sample is sampled from this far back
    stats_interval_s: float = 5.0
    slot_publish_interval_s: float = 3.0
    slot_rebalance_s: float = 1.0
    surge_ratio: float = 3.0  # volume surge: this sweep's volume increment vs the previous one
    surge_min_volume: int = 10_000
    velocity_trades_per_min: float = 120.0
    volatility_pct: float = 3.0  # price move since the previous sweep, percent
    candidate_ttl_s: float = 1_200.0
    overflow_interval_s: float = 60.0  # one overflow entry per symbol per interval


class WriterConfig(_Section, frozen=True):
    # group commit: a line waits at most this long for its fsync (DESIGN: 100-200 ms); an fsync is
    # ~10 ms here, so the shortest keeps receive -> fsynced p99 lowest
    flush_interval_ms: int = 100
    max_batch_records: int = 16_384  # per group commit: one fsync per file per commit bounds records/s
    queue_bytes: int = 256 * 1024 * 1024
    disk_retry_ms: int = 1_000
    # zmq receive queue of the archive PULL (batches of up to 256 KiB: <= 32 MiB): while intake is
    # paused, what exceeds it stays in the producers' replay buffers instead of the writer's memory
    recv_hwm: int = 128
    # de-duplication window generation, bytes of lines; 0: bus.replay_buffer_bytes (what a producer
    # can resend). The window keeps one to two generations (sinks/writer/index.py)
    dedupe_generation_bytes: int = 0


class MonitorConfig(_Section, frozen=True):
    sample_interval_s: float = 5.0
    sustain_s: float = 300.0
    clear_s: float = 300.0
    metrics_interval_s: float = 300.0
    cpu_level1_pct: float = 80.0
    cpu_level2_pct: float = 90.0
    memory_level1_pct: float = 85.0
    memory_level2_pct: float = 95.0
    disk_latency_level1_ms: float = 500.0
    disk_latency_level2_ms: float = 1_000.0
    lag_level1_s: float = 2.0
    lag_level2_s: float = 5.0
    # a worker's gauge older than this (real seconds) is unknown, not its last value
    stats_stale_s: float = 30.0
    level_republish_s: float = 3.0  # real seconds; late joiners learn the level
    health_publish_s: float = 2.0  # real seconds; stats.monitor
    # data freshness during a session
    scalp_stale_windows: int = 10  # no scalp sample for this many sampling windows -> red
    swing_sweep_grace_s: float = 300.0  # a sweep's records may arrive this long after its mark
    silent_red_fraction: float = 0.5  # acked-but-silent symbols / slots in use at which status is red
    heartbeat_silence_s: float = 60.0  # a worker silent this long counts as a log silence (anomalous day)
    # Prometheus /metrics served by the monitor, "host:port" (loopback by default); "" = off
    metrics_listen: str = "127.0.0.1:9464"


class AlertsConfig(_Section, frozen=True):
    telegram_base_url: str = "https://api.telegram.org"
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0
    request_timeout_s: float = 5.0
    queue_size: int = 256  # pending messages; beyond it the oldest is dropped, counted and logged


class HousekeepingConfig(_Section, frozen=True):
    """The housekeeper: daily backup package (pulled over SFTP by the backup PC) and retention.

    Times of day are KST and follow the worker's clock; ``*_real_s`` are wall-clock seconds."""

    backup_at: time = time(21, 0)
    raw_retention_days: int = 3
    anomalous_retention_days: int = 7
    max_retention_days: int = 10
    retention_at: time = time(21, 30)  # the daily retention run
    backup_retention_days: int = 3  # a *verified* package is removed from this host after this many days
    disk_pressure_pct: float = 80.0  # above it, the oldest verified days' raw/ and packages go first
    disk_check_interval_s: float = 300.0
    backup_retry_s: float = 600.0  # after a failed or postponed backup; doubles up to 6 h
    backup_catchup_days: int = 10  # past days with data but no package are packaged too
    backup_compress_level: int = 6
    backup_quiet_real_s: float = 60.0  # swing/scalp/raw files of a day unmodified this long = done
    backup_group: str = ""  # group that may read packages (the SFTP user's); empty: 0600/0700 only
    receipts_dir: str = ""  # where the backup PC uploads receipts; empty: <data_dir>/backup_receipts
    receipt_poll_real_s: float = 5.0
    # the backup PC's receipt signing key(s): a file of `ssh-ed25519 AAAA...` lines; empty: every
    # receipt is rejected (a receipt must prove who wrote it, see sinks.housekeeping.signing)
    receipt_public_key: str = ""
    verify_deadline_h: float = 24.0  # a package not verified this long after creation is CRITICAL


class ResearchConfig(_Section, frozen=True):
    """Research outputs (``sinks.research``): Parquet export, PostgreSQL load, daily report.

    The nightly jobs run in the housekeeper right after the day's backup package is made. The DSN
    names host, database and user; a password comes from ``PGPASSWORD`` / ``~/.pgpass``, never
    from this file."""

    out_dir: str = ""  # empty: <data_dir>/research (parquet/YYYYMMDD, reports/YYYYMMDD)
    nightly_export: bool = False
    nightly_etl: bool = False
    etl_dsn: str = ""  # e.g. postgresql://observer@db.local/market (required by nightly_etl)
    etl_connect_timeout_s: float = 10.0
    summary_telegram: bool = True  # the monitor sends the end-of-day summary once
    summary_delay_s: float = 600.0  # after both tracks' end (market time)
    summary_timeout_real_s: float = 300.0
    nightly_timeout_real_s: float = 3_600.0  # one export or load; killed after it

    def __post_init__(self) -> None:
        if self.nightly_etl and not self.etl_dsn:
            raise ValueError("nightly_etl needs etl_dsn")
        if ":" in self.etl_dsn.partition("@")[0].removeprefix("postgresql://").removeprefix("postgres://"):
            raise ValueError("etl_dsn must not carry a password (use PGPASSWORD or ~/.pgpass)")


class JetStreamConfig(_Section, frozen=True):
    """The archive stream on NATS JetStream (``sinks.jetstream``). Off unless ``enabled``; then the
    writer forwards every committed line on the ``archive_stream`` hop and the ``jetstream`` worker
    (also to be named in ``[supervisor] workers``) publishes it."""

    enabled: bool = False
    url: str = "nats://127.0.0.1:4222"
    stream: str = "OBSERVER_ARCHIVE"
    subject_prefix: str = "archive"  # subjects are <prefix>.<feed topic>, e.g. archive.swing.KOSPI.005930
    replicas: int = 1
    # JetStream's de-duplication window (Nats-Msg-Id = record_id): a resend older than it would be
    # stored twice, so it must cover the longest outage of the sink that the writer's buffer holds
    duplicate_window_s: float = 3_600.0
    publish_timeout_s: float = 5.0
    max_in_flight: int = 1_024  # published, not yet acknowledged by JetStream
    queue_batches: int = 64  # admitted hop batches waiting for the publisher thread
    replay_buffer_bytes: int = 64 * 1024 * 1024  # the writer's replay buffer on the archive_stream hop

    def __post_init__(self) -> None:
        if "@" in self.url.partition("://")[2].partition("/")[0]:
            raise ValueError("url must not carry credentials (they would show in logs and config check)")
        for token in self.subject_prefix.split("."):
            if not token or any(c in token for c in " *>\t"):
                raise ValueError(f"subject_prefix {self.subject_prefix!r} is not a NATS subject prefix")


class SupervisorConfig(_Section, frozen=True):
    workers: list[str] = msgspec.field(
        default_factory=lambda: [
            "sim",
            "writer",
            "observer",
            "monitor",
            "rest-collector",
            "ws-collector",
            "housekeeper",
        ]
    )
    heartbeat_interval_ms: int = 1_000
    heartbeat_timeout_ms: int = 10_000
    startup_grace_ms: int = 15_000
    stable_after_s: float = 5.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    flap_max_restarts: int = 5
    flap_window_s: float = 60.0
    stop_timeout_s: float = 10.0


class Config(_Section, frozen=True):
    paths: PathsConfig = PathsConfig()
    bus: BusConfig = BusConfig()
    clock: ClockConfig = ClockConfig()
    logging: LoggingConfig = LoggingConfig()
    provider: ProviderConfig = ProviderConfig()
    kis: KisConfig = KisConfig()
    sim: SimConfig = SimConfig()
    calendar: CalendarConfig = CalendarConfig()
    universe: UniverseConfig = UniverseConfig()
    track_a: TrackAConfig = TrackAConfig()
    track_b: TrackBConfig = TrackBConfig()
    core: CoreConfig = CoreConfig()
    writer: WriterConfig = WriterConfig()
    monitor: MonitorConfig = MonitorConfig()
    alerts: AlertsConfig = AlertsConfig()
    housekeeping: HousekeepingConfig = HousekeepingConfig()
    research: ResearchConfig = ResearchConfig()
    jetstream: JetStreamConfig = JetStreamConfig()
    supervisor: SupervisorConfig = SupervisorConfig()

    @property
    def archive_provider(self) -> str:
        """The provider id that everything recorded names: records' meta source, events, the
        archive's directories, backups. ``kis-sim`` when the simulator is the source, so synthetic
        data can never be taken for KIS data; ``[provider].name`` otherwise."""
        return f"{self.provider.name}-sim" if self.sim.enabled else self.provider.name
