"""Run a streamcore broker in the foreground for a benchmark, optionally under cProfile.

``python -m streamcore.bench.foreground_broker --data-dir DIR [--port 0] [--fsync interval]
[--cprofile FILE]`` prints ``listening on HOST:PORT`` once ready, as ``streamcore broker``
does, and stops cleanly on SIGTERM/SIGINT. The event loop runs in the main thread, so
``--cprofile`` sees the whole request path; the profile is written after the clean stop.
"""

from __future__ import annotations

import argparse
import cProfile
import sys

from streamcore.broker.config import load_config
from streamcore.broker.embedded import run_broker

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the broker until a signal, return its exit status."""
    p = argparse.ArgumentParser(prog="python -m streamcore.bench.foreground_broker")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--fsync", choices=("always", "interval", "never"), default="interval")
    p.add_argument("--cprofile", metavar="FILE", help="write a cProfile of the broker to FILE on exit")
    args = p.parse_args(argv)
    config = load_config(
        None,
        cli={
            "data_dir": args.data_dir,
            "listeners.host": args.host,
            "listeners.port": args.port,
            "storage.fsync": args.fsync,
        },
    )
    if not args.cprofile:
        return run_broker(config)
    profiler = cProfile.Profile()
    try:
        return int(profiler.runcall(run_broker, config))
    finally:
        profiler.dump_stats(args.cprofile)


if __name__ == "__main__":
    sys.exit(main())
