"""SLA sweep time with 1,000,000 stored items of which 10,000 open, beside the same sweep with its index unusable.

Run: python tests/bench/bench_sweep.py [--quick] [--items N] [--runs N] [--postgresql URL]
Goal: p95 under 50 ms, through the partial indexes ix_thread_sla_due and ix_thread_sla_warn.
"""

from inbox.bench.sweep import main

if __name__ == "__main__":
    main()
