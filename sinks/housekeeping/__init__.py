"""Housekeeping: the daily backup package, its verification by the backup PC, and retention.

Consumes: the archive files on disk (never the archive stream), the backup PC's receipts, and the
clock; produces SystemEvents over the ingest hop and alerts on ``alert.housekeeper``.

Data flow::

    archive files of KST day D (swing/ scalp/ raw/ system/ metrics/, the day's universe)
      -> sinks.housekeeping.backup.create_package  (21:00 KST, by the housekeeper; or ``observer backup create``)
      -> backup/YYYYMMDD/{manifest.json, <family>_YYYYMMDD.tar.gz ...}      (tmp dir + rename)
      -> backup PC: sinks.housekeeping.backup_pull (SFTP, key auth, known_hosts verified) downloads, checks every
         SHA-256 of the manifest, files and tar members, then uploads a receipt over the same session
         -> <receipts_dir>/YYYYMMDD.json
      -> housekeeper: sinks.housekeeping.receipts checks the receipt against the local manifest
         -> state/backup_verified/YYYYMMDD.json  (the only thing retention trusts)
      -> sinks.housekeeping.retention: raw/ and packages of verified days are deleted after their keep period

Modules: ``layout`` (paths of a day, private files), ``manifest`` (manifest, receipt and
marker structs; `verify_package`), ``backup`` (the package builder), ``backup_pull`` (the backup
PC's SFTP pull), ``receipts`` (receipt -> verified marker), ``retention`` (what may be deleted,
and deleting it), ``jobs`` (what each scheduled job does and the events it raises), ``worker``
(the process: clock-driven schedules, the bus), ``cli`` (``observer backup|retention``).
"""
