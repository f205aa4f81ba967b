"""Provider adapters and collector workers.

REST (Track A) and WebSocket (Track B) collectors turn broker answers into schema messages
(`observer.schema`) at the edge and push them onto the ingest bus. They reach a broker only
through the provider interface (`providers`: `IMarketDataProvider` for Track A, `IRealtimeStream`
for Track B, each built by name from ``[provider].name``).

Modules: ``providers`` (the interface and its registries), ``rest_worker`` (Track A sweeps),
``rest_report`` (its events and gap markers), ``rest_marks`` (its durable ledger of sweep marks),
``universe_build`` (the day's universe), ``ws_worker`` (Track B: sockets, hot path, stats),
``ws_link`` (Track B's connection lifecycle) and ``ws_states`` (its transition table),
``ws_report`` (Track B's events and gap markers), ``cli`` (``observer universe``). Packages:
``kis`` (the KIS adapter: REST client and provider, real-time stream), ``kis_sim`` (a local
simulator of the KIS protocols, so that everything runs offline).
"""
