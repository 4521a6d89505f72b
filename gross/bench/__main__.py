"""``python -m gross.bench``: run the benchmark suite (see :mod:`gross.bench`)."""

from . import main

raise SystemExit(main())
