"""Triage time per message under 500 characters, the model and the rules beside the keyword rules alone.

Run: python tests/bench/bench_triage.py [--quick] [--items N]
Goal: p99 under 1 ms per message.
"""

from inbox.bench.triage import main

if __name__ == "__main__":
    main()
