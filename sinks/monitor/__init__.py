"""The monitor: machine and data health -> mitigation level, metrics, alerts, the operator's view.

Consumes: the event bus (worker stats, heartbeats, slots, alerts, supervisor and system events),
psutil, and for ``observer status`` the supervisor's control socket (through `observer.control`,
never the supervisor package) and today's gap markers on disk.

Modules: ``worker`` (the process), ``stats`` (the latest stats of every worker), ``mitigation``,
``health`` and ``freshness`` (the rules), ``metrics`` (MetricsSnapshots), ``alerts`` (Telegram),
``prometheus`` (``/metrics``), ``day_summary`` (the end-of-day Telegram summary), ``view`` and
``cli`` (``observer status``).

Data flow::

    psutil (CPU %, memory %, disk usage of the data dir)  --+
    event bus SUB: stats.*, heartbeat.*, slots, alert.*,     |--> StatsBook (latest stats Struct per
                   supervisor.*, system.*                    |    worker; counters turned into totals)
                                                             v
      MitigationState (mitigation.py)   -> MitigationLevel on topic ``mitigation`` (each change and
                                           every few seconds) + SystemEvent ``mitigation_change``
      HealthRules (health.py, policy.py) -> status green/amber/red + reasons on ``stats.monitor``;
                                           alert episodes -> sinks.monitor.alerts (Telegram or log);
                                           SystemEvent ``day_anomalous`` once per KST day
      MetricsWindow (metrics.py)        -> MetricsSnapshot every ``metrics_interval_s``
      memory.py                         -> ``state/monitor.json``: level, day counters, alert
                                           episodes and sweep mark survive a monitor restart
    SystemEvents and MetricsSnapshots go over the ingest hop (ReliableSender, producer ``monitor``);
    the core archives them (system/events/..., metrics/YYYYMMDD.jsonl).

    ``observer status`` (cli.py, view.py) = supervisor control ``status`` + ``stats.monitor`` +
    today's gap markers from ``system/events/*/YYYYMMDD.jsonl``.

What the monitor reads: one Struct per worker on topic ``stats.<worker>`` (``observer.schema``:
``CoreStats``, ``WriterStats``, ``WsCollectorStats``), fixed fields, no names to alias. Counters
are cumulative per producer run (a decrease is read as a restart; `stats.COUNTED` lists the ones
it follows); stats older than ``monitor.stats_stale_s`` are *unknown*, never zero, and so is a
field left ``None``.

* core: ``samples_expected`` / ``samples_written`` (Track B rate = delta written / delta expected
  over 5 min), ``gap_markers`` by track/cause, ``track_a_collection_rate`` (or
  ``track_a_sweep_recorded`` / ``track_a_sweep_universe``), ``track_a_sweep_at`` (the newest sweep
  mark: swing freshness), ``slots`` (per-slot totals: the stale-slot fallback,
  `freshness.SlotProgress`), ``slots_used``, ``event_lag_max_s``; optional
  ``track_b_oldest_sample_age_s``, ``track_b_silent_symbols`` (else the ws-collector's
  ``symbol_silent`` events on ``system.ws-collector``), ``track_a_open`` / ``track_b_open``;
* writer: ``written`` by track, ``fsync_p99_ms`` (then ``fsync_last_ms``: the disk write latency),
  ``disk_error``;
* ws-collector: ``reconnects``, ``connected``, ``last_frame_age_s`` (None: no frame yet),
  ``in_session`` (the session window, over the calendar).

Alerts from other workers: a ``SystemEvent`` published on topic ``alert.<worker>`` (e.g. the
housekeeper's ``backup_failed``, CRITICAL) is sent to Telegram once per event; CRITICAL events on
``supervisor.*`` (a FATAL worker) and ``system.*`` (the ws-collector's escalation) likewise.

What the monitor publishes on ``stats.monitor``: ``MonitorStats`` — ``health`` (0 green, 1 amber,
2 red), ``reasons`` (active health reason -> 1 amber / 2 red, keys in ``health.REASON_TEXT``),
``values`` (``HealthValues``: CPU, memory, disk, latency, lag, rates, reconnects, slots; None =
unknown), its level and alert counters.
"""
