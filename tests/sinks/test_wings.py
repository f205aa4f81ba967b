"""The sinks are wings that never import one another, and nothing in them imports the supervisor."""

from __future__ import annotations

from tests.conftest import REPO, imported_modules

SINKS = REPO / "sinks"
WINGS = sorted(p.name for p in SINKS.iterdir() if (p / "__init__.py").exists())


def test_the_wings_are_there() -> None:
    assert {"writer", "monitor", "housekeeping"} <= set(WINGS)
    assert [p.name for p in SINKS.glob("*.py")] == ["__init__.py"]  # every module lives in a wing


def test_no_wing_imports_another_or_the_supervisor() -> None:
    crossings = []
    for wing in WINGS:
        for path in sorted((SINKS / wing).rglob("*.py")):
            for module in imported_modules(path):
                parts = module.split(".")
                if parts[0] == "supervisor" or (parts[0] == "sinks" and parts[1:2] != [wing]):
                    crossings.append(f"{path.relative_to(REPO)} imports {module}")
    assert crossings == []
