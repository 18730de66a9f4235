"""`python -m inbox` runs the CLI."""

from inbox.cli import main

main()
