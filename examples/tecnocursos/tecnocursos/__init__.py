"""TecnoCursos: a course-video platform API built on fastapi-enterprise.

The package is organised by domain: ``core`` (settings, database, the app factory),
``auth`` (accounts, passwords, tokens) and ``users``. Start at
:func:`tecnocursos.core.app.create_app`.
"""

__all__: list[str] = []
