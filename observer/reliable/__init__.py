"""At-least-once delivery over PUSH/PULL, made exactly-once by the receivers.

Producer side (`ReliableSender`): every body gets ``(producer, run_id, seq)``; the encoded body is
kept in a byte-bounded replay buffer until the receiver acknowledges it (cumulative `Ack` on the
receiver's ack PUB socket). ``send`` never blocks: it appends to the buffer and transmits what the
PUSH socket accepts right now (``ZMQ_IMMEDIATE``, non-blocking); `pump` transmits the rest.
Consecutive bodies travel together in one `EnvelopeBatch` (up to ``batch_max_records`` /
``_BATCH_MAX_BYTES``); a producer built with ``transmit_on_send=False`` leaves transmitting to its
loop's `pump`, so what one loop turn produced goes out in as few bus messages as possible (one
record per message costs ~8x more per record, PERF.md). The PUSH queue's HWM is bounded so that
queued batches stay within the replay buffer's byte bound. When acks stop advancing for
``resend_after_ms`` (doubling up to ``resend_max_ms``), what is not acknowledged is sent again
(go-back-N) from the oldest the receiver has not taken in (``Ack.received``: a receiver that is
only slow to fsync gets nothing twice), or from the oldest unacknowledged when the receiver says
nothing more. While the receiver keeps acknowledging (it re-publishes every ``ack_republish_ms``)
it is alive, and a live connection loses nothing: the go-back then waits ``resend_max_ms``. A
receiver whose ``received`` goes down was restarted and lost its queues: the producer goes back at
once. When the buffer's byte bound overflows, the *oldest* entries are abandoned, counted, and
reported once as a `SeqGap` with the exact seq range; the envelope's ``floor`` tells receivers
that nothing below it will ever come.

Receiver side (`ReliableReceiver`): accepts per (producer, run) only the next expected seq, so
processing is in order and duplicates are dropped (a batch is trimmed to what is new);
`receive_batches` hands on admitted batches, `receive` one `Envelope` per message. A ``floor``
above the expected seq is a hole, reported as a `SeqGap`. ``ack`` publishes a cumulative ack; the
latest acks are re-published every ``ack_republish_ms`` so a producer that (re)connects learns
where it stands.

Modules: ``common`` (run ids, `SeqGap`, `hop_endpoints`), ``sender`` (`ReliableSender`), ``receiver``
(`ReliableReceiver`); import them from ``observer.reliable``.
"""

from observer.reliable.common import SeqGap, hop_endpoints, new_run_id
from observer.reliable.receiver import ReliableReceiver
from observer.reliable.sender import ReliableSender

__all__ = ["ReliableReceiver", "ReliableSender", "SeqGap", "hop_endpoints", "new_run_id"]
