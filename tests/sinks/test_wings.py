"""The sinks are wings that never import one another, and nothing in them imports the supervisor."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

SINKS = REPO / "sinks"
WINGS = sorted(p.name for p in SINKS.iterdir() if (p / "__init__.py").exists())


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


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
