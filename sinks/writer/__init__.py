"""The partition writer: the only process that touches archive files.

Consumes: the archive hop (ArchiveRecords from the core) and ``mitigation`` (scalp rotation);
produces acks after fsync. ``verify`` reads an archive back and judges it.

Data flow::

    archive PULL (ReliableReceiver: EnvelopeBatch[ArchiveRecord], in order, no duplicates)
        -> WriterWorker.handle_archive: one Chunk per batch (checked lines + the batch's ack);
           bad input rejected (system event, acked)                mitigation SUB (scalp rotation)
        -> IntakeQueue (byte-bounded; when full the worker stops reading the socket)
        -> Committer thread: startup repair (torn tails) + de-duplication window from its marks,
           then group commits: skip ids in the window (RecentIds: what producers can still resend)
           -> route (partitions.Partitioner, cached per 10 minutes) -> a writer-sync thread: one
           write per file (FileTable, O_APPEND, rolled back on error) -> fsync files + new dirs
           (meanwhile the committer prepares the next commit)
        -> acks (pipe wakeup) -> WriterWorker publishes cumulative Acks on archive_ack
        -> fresh lines of each commit -> feed.FeedThread -> public ``feed`` PUB (after the fsync)
        -> with ``[jetstream] enabled``: the same lines with file and offset -> forward.StreamForwarder
           -> ``archive_stream`` hop (ReliableSender, own bounded buffer) -> sinks.jetstream

Modules: ``partitions`` (path rules, scalp rotation), ``files`` (file table, lock), ``repair``
(torn-tail truncation), ``index`` (the de-duplication window and its marks), ``queue`` (intake
queue), ``committer`` (the writer thread), ``feed`` (the public feed thread), ``forward`` (the archive-stream hop), ``worker`` (the
process), ``verify`` (is an archive sound), ``cli`` (``observer verify``).
"""
