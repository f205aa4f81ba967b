"""Consumers of the pipeline, as wings that never import one another (shared code lives in
`observer`):

* ``writer`` — consumes the archive hop; the only process that writes archive files; ``verify``;
* ``monitor`` — consumes the event bus (stats, heartbeats, alerts); mitigation level, metrics,
  health, Telegram alerts, the ``observer status`` view;
* ``housekeeping`` — consumes the archive on disk and the backup PC's receipts; the daily backup
  package, its SFTP pull, retention, ``observer backup|retention``;
* ``research`` — consumes the archive on disk (read-only); Parquet export, PostgreSQL ETL, the
  day's report.
"""
