"""Team leads' report over 1,000,000 conversations, beside a plain COUNT(*) of the same rows, on SQLite and PostgreSQL.

Run: python tests/bench/bench_report.py [--quick] [--conversations N] [--runs N] [--postgresql URL]
Goal: the total row under 2 s.
"""

from inbox.bench.report import main

if __name__ == "__main__":
    main()
