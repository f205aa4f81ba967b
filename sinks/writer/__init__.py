"""The partition writer: the only process that touches archive files.

Consumes: the archive hop (ArchiveRecords from the core) and ``mitigation`` (scalp rotation);
produces acks after fsync. ``verify`` reads an archive back and judges it.

Data flow::

    archive PULL (ReliableReceiver, in order, no duplicates)      mitigation SUB (scalp rotation)
        -> WriterWorker.handle_archive: decode ArchiveRecord, reject bad input (system event, acked)
        -> IntakeQueue (byte-bounded; when full the worker stops reading the socket)
        -> Committer thread: startup repair (torn tails) + record-id index, then group commits:
           dedup by record_id (RecordIndex) -> route (partitions.Partitioner) -> one write per file
           (FileTable, O_APPEND, rolled back on error) -> fsync files + new dirs
        -> acks (pipe wakeup) -> WriterWorker publishes cumulative Acks on archive_ack
        -> fresh lines of each commit -> feed.FeedThread -> public ``feed`` PUB (after the fsync)

Modules: ``partitions`` (path rules, scalp rotation), ``files`` (file table, lock), ``repair``
(torn-tail truncation), ``index`` (committed record ids), ``queue`` (intake queue), ``committer``
(the writer thread), ``feed`` (the public feed thread), ``worker`` (the process), ``verify`` (is an
archive sound), ``cli`` (``observer verify``).
"""
