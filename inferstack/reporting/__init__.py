"""Reporting: what a plan says to a person: summary.md, the diff against a git ref, cost, the config reference."""
