"""``python -m tecnocursos.demo``: see :mod:`tecnocursos.demo.cli`."""

from tecnocursos.demo.cli import main

raise SystemExit(main())
