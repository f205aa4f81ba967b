"""KRX market observer: the core and what every process shares.

Data flow: collectors push QuoteSnapshots / TradeFrames onto the *ingest* bus -> the core
(`observer.core`) validates, guards, enriches, samples and routes them -> ArchiveRecords on
the *archive* bus -> the partition writer (`sinks.writer`) appends and fsyncs -> acks flow back.

Shared here (every process may import these; they import no collector, sink or supervisor):
``config/`` (the one frozen config tree, loading, paths, secrets), ``clock`` (system, session and
manual clocks), ``calendar`` (the trading calendar) and ``sessions`` (when each track is open and
each scheduled job is due), ``days`` (day names: ``YYYYMMDD`` keys, ``--day`` options), ``schema``
(every cross-process message), ``record_ids`` (every archive id), ``gap_markers`` (every
lost range becomes a GapMarker here), ``bus`` (endpoints, the topic table, sockets) and ``reliable`` (the
acknowledged hop), ``control`` (the supervisor's control-socket client), ``logs``, ``retry``,
``pidlock``, ``alarms`` (standing CRITICAL conditions on disk), ``universe`` (the day's universe
snapshot), ``worker_base`` (the `Worker` every process runs) and ``worker_registry`` (name ->
worker class), ``cli`` (the ``observer`` command). Packages: ``core`` (the core worker),
``replay`` (the archive back onto the bus).
"""
