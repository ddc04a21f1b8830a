"""Reference twin of the record_batch capability (being written)."""
