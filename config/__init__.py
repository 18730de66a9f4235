"""Shipped configuration: example config, triage rules and reply templates."""
