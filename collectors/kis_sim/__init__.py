"""KIS simulator: the KIS REST and WebSocket protocols over a synthetic, deterministic KRX market.

Data flow::

    activity (how busy: rank law, intraday profile, fills, bursts; the calibration is written there)
    universe (listings from the seed) -> market (lazy per-symbol trade processes on virtual time,
        one `state` per symbol and day; the first look crosses the past with `fastforward`)
        -> views   -> rest   (OAuth, quotations, chk-holiday, master files)   -> HTTP clients
        -> records -> ws_service (registrations, pump, PINGPONG) -> ws_session (per-session queue,
           writer thread, frame faults) -> rfc6455 (the WebSocket server: handshake, framing)
    faults (admin-switched windows) act on rest and the ws_* modules at the moment they answer or write;
    truth (ledger) counts what was actually written, down to every trade; admin serves health,
    truth, the per-trade ground truth and faults;
    server.Simulator starts and stops all of it (and warms the market up in the background);
    cli / __main__ run it (`observer sim ...`).
"""
