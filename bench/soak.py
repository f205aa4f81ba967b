"""`make soak`: the chaos soak with accounting closure (see `testkit.soak` and `testkit.closure`).

    SOAK_S=600 SEED=1 SCALE=1 .venv/bin/python bench/soak.py      # the defaults

Runs the whole pipeline on the simulator for ``SOAK_S`` seconds at ``[sim] activity_scale`` =
``SCALE`` with random overlapping faults every 6-40 s (seeded by ``SEED``), then prints the
accounting and ``closure X.XXX%``; exits 1 below 100 % (or on duplicates, unexplained scalp windows
or a failed `observer verify`). The archive is kept under the printed directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testkit.soak import main_from_env

if __name__ == "__main__":
    sys.exit(main_from_env(600, 1))
