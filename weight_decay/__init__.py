"""weight_decay: the application on top of the project.

The ``weight-decay`` command (also ``python -m weight_decay``) and what only a person at a
terminal needs: the subcommands, the demo tables, figures, progress bars, and loading a
backend by name. The libraries below it (:mod:`wd_core`, :mod:`wd_torch`, :mod:`wd_jax`, the
benchmarks) never import it.
"""
