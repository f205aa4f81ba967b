"""The chaos soak, short and seeded: the whole pipeline on a busy simulated market, >= 10 random
overlapping faults (kills of every worker, a stopped writer, every simulator fault kind), then the
accounting closure: every published trade archived in raw/ or inside a gap marker naming its
symbol, no duplicate, every missing scalp window inside a marker, `observer verify` clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.soak import SoakRun


@pytest.mark.soak
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_short_chaos_soak_closes_its_accounts(short_tmp: Path) -> None:
    # 140 real s at a 1.5x session clock: 3.5 simulated minutes from 09:30, at realistic activity
    run = SoakRun(short_tmp, seconds=140, seed=7, speed=1.5, fault_gap_s=(6.0, 14.0), symbol_count=1_500)
    result = run.run()
    print(result.render())
    assert len(result.faults) >= 10, result.faults
    assert any(f.startswith("kill:") for f in result.faults) and any(
        f.startswith("sim:") for f in result.faults
    )
    assert result.report.total("published") >= 3 * 60 * 80, "a busy market: ~100+ records/s"
    assert result.report.ok, result.render()
    assert result.report.closure == 1.0
