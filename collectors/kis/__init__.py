"""KIS (Korea Investment & Securities) Open API adapter.

Data flow, REST (Track A)::

    settings (which server, which credentials)
      -> token (one cached access token per app key, shared by every process via an fcntl lock)
      -> ratelimit (one token bucket per app key, shared across processes via a locked state file)
      -> rest.KisRestClient (retries, error codes, body parsed whatever the HTTP status; fails
         with `errors.KisError`, counts into `call_stats.CallStats`)
      -> normalize (KIS string fields -> ints / QuoteSnapshot; provider vocabulary stops here)
      -> provider.KisProvider (the `collectors.providers.IMarketDataProvider` the workers use)

WebSocket (Track B)::

    stream.KisStream (the `collectors.providers.IRealtimeStream` the WS collector uses)
      -> approval (the approval key) -> ws.WsSession (one session, its reader thread)
      -> subscriptions (registrations of a session, what each KIS ack code means)
      -> ws_parser (H0STCNT0 data frames -> Ticks, JSON control frames)
"""
