"""Ingest throughput with 1, 2 and 4 workers sharing one PostgreSQL store (leases and all).

Run: python tests/bench/bench_workers.py --postgresql URL [--quick] [--items 20000]
Goal: 2 workers at least 1.7x one.
"""

from inbox.bench.workers import main

if __name__ == "__main__":
    main()
