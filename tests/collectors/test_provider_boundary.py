"""The collector workers reach a broker only through `collectors.providers`: no module of the
`collectors` package itself imports a provider adapter (``kis``) or the simulator."""

from __future__ import annotations

from tests.conftest import REPO, imported_modules

ADAPTERS = ("collectors.kis", "collectors.kis_sim")


def test_no_collector_module_imports_an_adapter() -> None:
    modules = sorted((REPO / "collectors").glob("*.py"))
    assert {p.name for p in modules} >= {"ws_worker.py", "ws_link.py", "rest_worker.py", "providers.py"}
    crossings = [
        f"{path.name} imports {module}"
        for path in modules
        for module in imported_modules(path)
        if module.startswith(ADAPTERS)
    ]
    assert crossings == []
