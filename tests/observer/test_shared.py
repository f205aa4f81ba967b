"""`observer` is what every process shares: none of its modules imports a collector, a sink or the
supervisor (the CLI names their command groups by module path and imports them at start-up).

`observer/replay` is left out: it is a tool over the whole pipeline that runs in no worker process
(re-derivation parses recorded raw frames with the WS collector's own parser)."""

from __future__ import annotations

from tests.conftest import REPO, imported_modules

OUTSIDE = ("collectors", "sinks", "supervisor")
TOOLS = REPO / "observer" / "replay"


def test_observer_imports_no_other_package() -> None:
    paths = sorted(p for p in (REPO / "observer").rglob("*.py") if TOOLS not in p.parents)
    assert len(paths) > 20
    crossings = [
        f"{path.relative_to(REPO)} imports {module}"
        for path in paths
        for module in imported_modules(path)
        if module.split(".")[0] in OUTSIDE
    ]
    assert crossings == []
