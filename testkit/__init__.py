"""Helpers shared by `tests/` and `bench/` (neither imports the other): `config` (configs under a
private directory), `records` (archive records of every track), `kis_frames` (KIS H0STCNT0
records and frames), `fake_workers` (misbehaving workers run through the real
``observer worker NAME`` path), `postgres` (a real PostgreSQL server in a temp dir), `soak` (the
whole pipeline under random faults) and `closure` (every published trade accounted for in the
archive). Not installed; importable from the repo root."""
