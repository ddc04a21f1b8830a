"""Reference twin of the wire capability (being written)."""
