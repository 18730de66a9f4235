"""The reports page over a year of conversations: GET /reports beside a plain COUNT(*) and inbox report's total row.

Run: python tests/bench/bench_reports_page.py [--quick] [--per-day 300] [--runs 3] [--postgresql URL]
Goal: the year's page under 2 s.
"""

import argparse
from typing import Any

from inbox.bench.reports_page import run
from inbox.bench.runner import script


def options(parser: argparse.ArgumentParser) -> Any:
    parser.add_argument("--per-day", type=int, help="conversations a day (default 300: 109,500 a year)")
    parser.add_argument("--runs", type=int, help="fetches of each window (default 3)")
    return lambda args: {"per_day": args.per_day, "runs": args.runs}


if __name__ == "__main__":
    script(run, __doc__, options)
