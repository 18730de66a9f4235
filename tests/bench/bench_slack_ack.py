"""Slack acknowledgement time: 200 concurrent signed clicks against the running service, beside GET /healthz.

Run: python tests/bench/bench_slack_ack.py [--quick] [--clicks 200] [--postgresql URL]
Goal: p99 acknowledgement under 100 ms.
"""

from inbox.bench.slack_ack import main

if __name__ == "__main__":
    main()
