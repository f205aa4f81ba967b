"""`observer` is what every process shares: none of its modules imports a collector, a sink or the
supervisor (the CLI names their command groups by module path and imports them at start-up)."""

from __future__ import annotations

from tests.conftest import REPO, imported_modules

OUTSIDE = ("collectors", "sinks", "supervisor")


def test_observer_imports_no_other_package() -> None:
    paths = sorted((REPO / "observer").rglob("*.py"))
    assert len(paths) > 20
    crossings = [
        f"{path.relative_to(REPO)} imports {module}"
        for path in paths
        for module in imported_modules(path)
        if module.split(".")[0] in OUTSIDE
    ]
    assert crossings == []
