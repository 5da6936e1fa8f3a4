"""Metrics examples included in the docs."""
