"""KRX market observer: the core and what every process shares.

Data flow: collectors push QuoteSnapshots / TradeFrames onto the *ingest* bus -> the core
(`observer.core`) validates, guards, enriches, samples and routes them -> ArchiveRecords on
the *archive* bus -> the partition writer (`sinks.writer`) appends and fsyncs -> acks flow back.
Shared here: config, clock, the trading calendar and market sessions (`observer.sessions`: when
each track is open and each scheduled job is due), schema, bus, logging, worker base, CLI.
"""
