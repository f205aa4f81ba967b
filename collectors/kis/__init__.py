"""KIS (Korea Investment & Securities) Open API adapter.

Data flow, REST (Track A)::

    settings (which server, which credentials)
      -> token (one cached access token per app key, shared by every process via an fcntl lock)
      -> ratelimit (one token bucket per app key, shared across processes via a locked state file)
      -> rest.KisRestClient (retries, error codes, body parsed whatever the HTTP status)
      -> normalize (KIS string fields -> ints / QuoteSnapshot; provider vocabulary stops here)
      -> provider.KisProvider (the `collectors.providers.IMarketDataProvider` the workers use)

WebSocket (Track B) lives in ``ws``, ``ws_parser``, ``approval`` and ``subscriptions``.
"""
