"""``python -m wd_core``: the same as the ``weight-decay`` command."""

from wd_core.cli import main

raise SystemExit(main())
