"""Pure-Python reference twins of the native capabilities (same names, same results)."""
