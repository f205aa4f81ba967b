"""The archive back onto the bus: replay, the feed's reference consumer, and re-derivation.

Data flow::

    archive files (read-only) -> reader (select files, parse times, merge in time order, streamed)
        -> pacing (speed 1 | N | max, pause on SIGTSTP) -> publisher (FeedPublisher on XPUB
           ``replay_feed``: the live feed's shape, ``replay`` flag, original time)
    live ``feed`` or ``replay_feed`` -> tap (JSON lines or counts/s, lost = holes in seq)
    raw/ + swing/ + system/ of a day -> rederive (ingest producer + events) -> a fresh core and
        writer on their own runtime dir -> a new archive in --out

Modules: ``reader``, ``pacing``, ``progress``, ``publisher``, ``tap``, ``rederive``, ``cli``.
"""
