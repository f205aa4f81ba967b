"""The observer core (worker ``observer``): where a collected message becomes archive records.

Data flow, one module per step::

    ingest hop (ReliableReceiver)           acks.py      ack upstream only when durable downstream
      -> TradeFrame   -> records.raw                    (raw/ line, every frame)
                      -> feed_outage.FeedOutage           (last frame per producer run; outages ->
                                                           gap-flagged samples; a new run ->
                                                           gaps.restart_gap_marker collector_restart)
                      -> rules.check_tick   -> rejections.py (counted, rate-limited events)
                      -> gaps.MissedTradeDetector         (missed trades -> GapMarker)
                      -> triggers.on_tick -> slots.SlotTable (trade velocity)
                      -> sampler.Sampler  -> records.scalp   (one sample per slot per window)
      -> QuoteSnapshot -> rules.check_snapshot -> records.swing
                       -> triggers.on_snapshot -> slots.SlotTable (surge, volatility)
      -> FeedStatus -> feed_outage.FeedOutage (gap-flagged or paused samples), archived as its event
      -> UniverseBuilt -> universe_day.DayUniverse reloaded, archived as its event
      -> DayAnomalous / SystemEvent / GapMarker / OverflowEntry / MetricsSnapshot -> records.line
    -> archive hop (ReliableSender) -> writer;  slots -> SlotCommand on topic ``slots``

`worker.CoreWorker` wires it, with `slot_keeping.SlotKeeping` (the day's slot table, sampler and
universe kept in step); `durable.DurableProgress` follows what the writer made durable (event lag,
the sampler checkpoint of `checkpoint.py`, with each WS producer run's last frame);
`feed_outage.py` says when the feed was down; `slots.py` keeps the slot table across restarts;
`stats.py` publishes ``CoreStats`` on ``stats.observer``; `universe_day.py` is the day's universe;
`activity.py` ranks symbols by Track A activity to seed free slots.
"""
