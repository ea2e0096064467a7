"""``python -m benchmarks``: run the benchmarks (``--help`` for the options)."""

from benchmarks.cli import main

raise SystemExit(main())
