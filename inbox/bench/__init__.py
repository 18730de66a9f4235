"""Benchmarks: `inbox bench` and tests/bench/ measure the inbox on the user's own store, each beside a same-run baseline."""
