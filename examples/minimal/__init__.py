"""The demo app: a small notes API on SQLite, built with fastapi-enterprise."""
