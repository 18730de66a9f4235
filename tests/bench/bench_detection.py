"""Detection latency: from a post appearing at a fake vendor to its triage message at the fake Slack.

Run: python tests/bench/bench_detection.py [--quick] [--poll-seconds 10] [--posts 40] [--outbox-seconds 1] [--postgresql URL]
Goals: p95 within the poll interval plus one second for a polled channel; under one second for pushed channels
(the webhook connector, Mastodon streaming).
"""

from inbox.bench.detection import main

if __name__ == "__main__":
    main()
