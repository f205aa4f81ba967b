"""The JetStream sink: every archived line, once, in a NATS JetStream stream (durable, replicable).

Data flow::

    writer committer (after the fsync) -> sinks.writer.forward.StreamForwarder (writer loop thread:
        ReliableSender, its own bounded replay buffer; the writer's acks upstream never wait for it)
    -> archive_stream PULL (ReliableReceiver: EnvelopeBatch[StreamLine], in order, no duplicates)
    -> JetStreamSinkWorker: admitted batches -> bounded queue (full: stop reading the socket)
    -> publisher thread (nats-py asyncio loop): publish_async, subject ``<prefix>.<feed topic>``,
       headers Nats-Msg-Id = record_id, Observer-Path, Observer-Offset; retried until acknowledged
    -> Published -> loop thread -> Ack on archive_stream_ack (only what JetStream acknowledged)

Why the writer forwards, rather than the core sending a second copy: only the writer knows where a
line landed (file, scalp rotation, offset) and that it is durable, so the stream holds exactly the
archive and a rebuild (``rebuild``, ``observer archive from-jetstream``) is byte-identical; the tick
path (collectors -> core) and the archive hop never wait on NATS: a dead sink or server costs the
writer replay-buffer memory, then a counted ``archive_stream_gap`` event, never an archive line.
Exactly once in the stream: the hop's resends (sink restart) and the publisher's retries (server
restart) carry the same Nats-Msg-Id, dropped by JetStream's duplicate window.
A writer killed -9 loses its replay buffer: its stream marks (``state/stream_marks.json``, per file
the offset the sink acknowledged) make the next writer resend what follows them
(``sinks.writer.forward``); JetStream drops what it already holds.

Modules: ``publisher`` (the asyncio thread), ``worker`` (the process), ``rebuild`` and ``cli``.
"""
