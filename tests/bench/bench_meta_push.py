"""Meta webhook deliveries: 200 signed WhatsApp deliveries at once against the running service, beside the HTTP floor.

Run: python tests/bench/bench_meta_push.py [--quick] [--deliveries 200] [--postgresql URL]
Goal: p99 answer under 100 ms, every delivery stored before its 200.
"""

from inbox.bench.meta_push import main

if __name__ == "__main__":
    main()
