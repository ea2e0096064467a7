"""``python -m benchmarks``: run the benchmarks (``--help`` for the options)."""

from .cli import main

raise SystemExit(main())
