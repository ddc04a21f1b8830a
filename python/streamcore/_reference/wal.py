"""Reference twin of the wal capability (being written)."""
