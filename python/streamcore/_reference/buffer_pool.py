"""Reference twin of the buffer_pool capability (being written)."""
