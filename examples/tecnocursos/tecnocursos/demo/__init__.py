"""Demo data: an admin, an instructor, a student and a sample course with its scenes.

``python -m tecnocursos.demo`` loads them (idempotently) into the database of the app's
settings; ``python -m tecnocursos.demo serve`` serves the app on embedded defaults with
them (what ``nox -s demo`` runs). Development and test databases only: staging and
production settings are refused.
"""
