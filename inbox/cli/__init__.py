"""The `inbox` command: its commands (`commands.py`) and what they print in a terminal (`render.py`)."""

from inbox.cli.commands import app, main

__all__ = ["app", "main"]
