"""Configuration: one frozen msgspec tree decoded from TOML, unknown keys forbidden.

    file (TOML) --load.decode_config--> tree.Config (frozen, validated: types, times of day,
    session windows) --load.load_config--> + environment overrides --> every worker
    environment --secrets.Secrets--> credentials (never from the file; print as ``***``)
    paths: runtime, data, log and state directories derived from the config

Units live in field names (`_ms`, `_s`, `_krw`). Secrets never come from the file: they are
read from the environment into `Secrets`, whose values print as ``***``.

Load order: ``--config PATH`` > ``$OBSERVER_CONFIG`` > ``config/observer.toml``.
``$OBSERVER_DATA_DIR`` overrides ``paths.data_dir``; ``$OBSERVER_RUNTIME_DIR`` overrides ``paths.runtime_dir``.
Workers are started with the same environment and re-load the same file.
"""

from observer.config.load import (
    CONFIG_ENV,
    DATA_DIR_ENV,
    DEFAULT_CONFIG_PATH,
    RUNTIME_DIR_ENV,
    config_from_dict,
    decode_config,
    effective_config_text,
    load_config,
    resolve_config_path,
)
from observer.config.paths import (
    VolatileDataDir,
    data_dir,
    ensure_private_dir,
    filesystem_type,
    log_dir,
    require_durable_data_dir,
    research_dir,
    runtime_dir,
    state_dir,
)
from observer.config.secrets import (
    MissingCredentials,
    Secret,
    Secrets,
    key_slots,
    require_source,
    track_b_capacity,
    track_b_sessions,
)
from observer.config.tree import (
    AlertsConfig,
    BusConfig,
    CalendarConfig,
    ClockConfig,
    Config,
    ConfigError,
    CoreConfig,
    HousekeepingConfig,
    JetStreamConfig,
    KisConfig,
    LoggingConfig,
    MonitorConfig,
    PathsConfig,
    ProviderConfig,
    ResearchConfig,
    SimConfig,
    SupervisorConfig,
    TrackAConfig,
    TrackBConfig,
    UniverseConfig,
    WriterConfig,
    sim_accounts,
)

__all__ = [
    "CONFIG_ENV",
    "DATA_DIR_ENV",
    "DEFAULT_CONFIG_PATH",
    "RUNTIME_DIR_ENV",
    "AlertsConfig",
    "BusConfig",
    "CalendarConfig",
    "ClockConfig",
    "Config",
    "ConfigError",
    "CoreConfig",
    "HousekeepingConfig",
    "JetStreamConfig",
    "KisConfig",
    "LoggingConfig",
    "MissingCredentials",
    "MonitorConfig",
    "PathsConfig",
    "ProviderConfig",
    "ResearchConfig",
    "Secret",
    "Secrets",
    "SimConfig",
    "SupervisorConfig",
    "TrackAConfig",
    "TrackBConfig",
    "UniverseConfig",
    "VolatileDataDir",
    "WriterConfig",
    "config_from_dict",
    "data_dir",
    "decode_config",
    "effective_config_text",
    "ensure_private_dir",
    "filesystem_type",
    "key_slots",
    "load_config",
    "log_dir",
    "require_durable_data_dir",
    "require_source",
    "research_dir",
    "resolve_config_path",
    "runtime_dir",
    "sim_accounts",
    "state_dir",
    "track_b_capacity",
    "track_b_sessions",
]
