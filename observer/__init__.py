"""KRX market observer: the core and what every process shares.

Data flow: collectors push QuoteSnapshots / TradeFrames onto the *ingest* bus -> the core
(`observer.core`) validates, guards, enriches, samples and routes them -> ArchiveRecords on
the *archive* bus -> the partition writer (`sinks.writer`) appends and fsyncs -> acks flow back.

Shared here (every process may import these; they import no collector, sink or supervisor):
``config/`` (the one frozen config tree, loading, paths, secrets), ``clock`` (system, session and
manual clocks), ``calendar`` (the trading calendar) and ``sessions`` (when each track is open and
each scheduled job is due), ``days`` (day names: ``YYYYMMDD`` keys, ``--day`` options), ``record_ids`` (every archive
id), ``gap_markers`` (every lost range becomes a GapMarker here), ``bus`` (endpoints, the topic
table, sockets), ``feed_sockets`` (the public feed's PUB/SUB), ``curve`` (CURVE on tcp endpoints),
``control`` (the supervisor's control-socket client), ``child_command`` (another ``observer`` command
as a child process), ``atomic`` (atomic private file writes), ``logs``, ``retry``, ``pidlock``,
``alarms`` (standing CRITICAL conditions on disk), ``universe`` (the day's universe snapshot),
``worker_base`` (the `Worker` every process runs) and ``worker_registry`` (name -> worker class),
``cli`` (the ``observer`` command). Packages: ``schema`` (every cross-process message, by concept),
``reliable`` (the acknowledged hop: sender, receiver), ``core`` (the core worker), ``replay`` (the
archive back onto the bus).
"""
