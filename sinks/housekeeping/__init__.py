"""Housekeeping: the daily backup package, its verification by the backup PC, restore, and retention.

Consumes: the archive files on disk (never the archive stream), the backup PC's receipts, and the
clock; produces SystemEvents over the ingest hop, alerts on ``alert.housekeeper``, and standing
alarms (`observer.alarms`) that keep ``observer status`` red while a CRITICAL condition lasts.

Data flow::

    archive files of KST day D (swing/ scalp/ raw/ system/ metrics/, the day's universe)
      -> backup.create_package  (21:00 KST, by the housekeeper; or ``observer backup create``)
      -> backup/YYYYMMDD/{manifest.json, <family>_YYYYMMDD.tar.gz ...}  (tmp dir + rename; an
         existing package is re-hashed and rebuilt when damaged while its data is still here)
      -> backup PC: backup_pull (SFTP, key auth, known_hosts verified) downloads, checks every
         SHA-256 of the manifest, files and tar members, then uploads a receipt signed with its
         Ed25519 key and carrying SHA-256(nonce || bytes) of every file (signing)
         -> <receipts_dir>/YYYYMMDD.json ; its copy in <dest>/YYYYMMDD/ (remote: weekly re-check,
            30-day prune only while a newer copy is good)
      -> receipts (housekeeper poll, or ``observer backup list``): signature, download proof and
         checksums against the local package -> state/backup_verified/YYYYMMDD.json
         (the only thing retention trusts)
      -> retention: raw/ and packages of verified days after their keep period; under disk
         pressure whole verified days, oldest first
      -> restore (``observer backup restore``): a package, checked, back into an archive dir

Modules: ``layout`` (paths of a day, private files), ``manifest`` (manifest, receipt and
marker structs; `verify_package`), ``backup`` (the package builder), ``backup_pull`` (the backup
PC's SFTP pull), ``signing`` (receipt signatures and download proofs), ``receipts`` (receipt ->
verified marker), ``remote`` (the backup PC's copies: re-check, prune), ``restore``,
``retention`` (what may be deleted, and deleting it), ``spool`` (CLI events kept until the core
has them), ``jobs`` (what each scheduled job does and the events it raises), ``worker`` (the
process: clock-driven schedules, the bus), ``cli``/``cli_remote``/``cli_support`` (``observer
backup|retention``; the backup PC's ``pull|check|prune``).
"""
