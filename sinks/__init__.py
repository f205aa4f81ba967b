"""Consumers of the archive stream: the partition writer, verify, backup, retention, alerts, metrics."""
