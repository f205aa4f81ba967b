"""The long chaos soak in `make bench`: 30 minutes at x10 activity, faults every 6-40 s, then the
accounting closure (see `testkit.soak`). ``SOAK_S``, ``SEED`` and ``SCALE`` override the defaults
(1800, 1, 10); ``make soak`` runs the same with a shorter default.

    .venv/bin/python bench/bench_soak.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testkit.soak import main_from_env

if __name__ == "__main__":
    sys.exit(main_from_env(1800, 10, quiet=True))
