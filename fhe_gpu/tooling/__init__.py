"""Researcher tooling (DESIGN §10): the ``fhe-gpu params``, ``bench`` and ``sweep``
commands, op-time calibration, plots, and the Simulator's accuracy grid."""
