"""``python -m gross.bench``: run the benchmark suite (see :mod:`gross.bench`)."""

from gross.bench import main

raise SystemExit(main())
