"""Benchmarks behind ``streamcore bench``: workloads, timing, and result tables.

Nothing here is imported by the broker or the client; third-party libraries that
serve as baselines (kafka-python, the ``crc32c`` package) are imported lazily and
only reported as missing when absent.
"""
