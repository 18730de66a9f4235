"""Ingest throughput: the whole pipeline (normalise, dedup, triage, store) beside a raw insert of the same rows.

Run: python tests/bench/bench_ingest.py [--quick] [--items 20000] [--page 100] [--postgresql URL]
SQLite always; PostgreSQL too with --postgresql (each in a scratch store of its own).
"""

from inbox.bench.ingest import main

if __name__ == "__main__":
    main()
