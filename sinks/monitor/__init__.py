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
    event bus SUB: stats.*, heartbeat.*, slots, alert.*,     |--> StatsBook (latest gauges with their
                   supervisor.*, system.*                    |    age; counters turned into deltas)
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

The stat names the monitor reads (``WorkerStats`` on topic ``stats.<worker>``). Counters are
cumulative per producer run (a decrease is read as a restart); gauges are current values. A name
that is missing, or a gauge older than ``monitor.stats_stale_s``, is *unknown*, never zero.

``stats.observer`` (the core)
    counters ``track_b.samples_expected``, ``track_b.samples_written`` — scalp samples due / recorded
             (Track B rate = delta written / delta expected over 5 min);
             ``gaps.swing``, ``gaps.scalp``, ``gaps.raw`` — gap markers emitted; ``rejections``
    gauges   ``track_a.sweep_recorded``, ``track_a.sweep_universe`` — symbols recorded / universe
             size of the latest completed sweep (Track A rate);
             ``track_a.sweep_at_s`` — epoch seconds of that sweep's scheduled 10-minute mark;
             ``track_b.oldest_sample_age_s`` — age of the oldest "latest sample" over occupied slots;
             ``track_b.silent_symbols`` — slot symbols acked by the server with no trade for
             ``track_b.silent_symbol_s``; ``track_b.slots_used``;
             ``event_lag_s`` — worst receive -> durable (writer ack) lag since the previous stats;
             optional ``session.track_a_open`` / ``session.track_b_open`` (1/0) — the core's
             calendar decision; without them the monitor uses weekdays + ``calendar.holidays``.
``stats.writer``
    counters ``records.swing``, ``records.scalp``, ``records.raw``, ``records.system``, ...
    gauges   ``fsync_latency_ms`` — worst write+fsync latency since the previous stats (disk write
             latency); ``disk_error`` (1 while the disk refuses writes)
``stats.ws-collector``
    counters ``ws.reconnects``
    gauges   ``ws.connected`` (1/0), ``ws.subscribed``, ``ws.last_frame_age_s``

Names the producers publish today are read as aliases when the canonical name is absent
(``stats.GAUGE_ALIASES`` / ``COUNTER_ALIASES``): core ``samples_expected`` / ``samples_written``
(cumulative gauges), ``track_a_collection_rate``, ``slots_used``, ``event_lag_max_s`` and the per-slot
``slot.NN.expected`` / ``slot.NN.written`` (stale-slot fallback, `freshness.SlotProgress`); writer
``fsync_p99_ms`` (then ``fsync_last_ms``), ``written_<track>``; ws-collector ``connected``,
``subscribed``, ``last_frame_age_s`` (< 0 = no frame yet), ``in_session``, ``reconnects``, and its
``symbol_silent`` events on ``system.ws-collector`` (silent-symbols fallback).

Alerts from other workers: a ``SystemEvent`` published on topic ``alert.<worker>`` (e.g. the
housekeeper's ``backup_failed``, CRITICAL) is sent to Telegram once per event; CRITICAL events on
``supervisor.*`` (a FATAL worker) and ``system.*`` (the ws-collector's escalation) likewise.

What the monitor publishes on ``stats.monitor`` (gauges; unknown values are left out):
``health`` (0 green, 1 amber, 2 red), ``mitigation_level``, ``cpu_pct``, ``memory_pct``,
``disk_usage_pct``, ``disk_latency_ms``, ``lag_s``, ``track_a_rate``, ``track_b_rate``,
``ws_reconnects_today``, ``ws_connected``, ``slots_used``, and one ``reason.<key>`` (1 amber,
2 red) per active health reason (keys in ``health.REASON_TEXT``).
"""
