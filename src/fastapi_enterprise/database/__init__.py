"""Async SQLAlchemy engine lifecycle, per-request sessions, errors and observability."""
