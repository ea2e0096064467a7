"""``python -m weight_decay``: the same as the ``weight-decay`` command."""

from weight_decay.cli import main

raise SystemExit(main())
