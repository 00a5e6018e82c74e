"""The dependency rules of DESIGN §3, checked on the source so they stay true:

- apps depend one way: ``orders`` -> ``compliance`` and ``routing``; ``compliance``
  reads orders (models, selectors) but never calls ``orders.services`` (its API and
  admin, interfaces, may) and never imports ``routing``; ``routing`` reaches orders
  only by task name; ``audit`` imports no domain app;
- ``oms_site``'s library modules import no app;
- no import of another app hidden inside a function (a cycle means misplaced code);
- no module over 700 lines (migrations and the venue simulator aside).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("orders", "compliance", "routing", "audit", "oms_site")
DOMAIN_APPS = ("orders", "compliance", "routing")
MAX_LINES = 700


def _modules() -> list[Path]:
    return sorted(
        path
        for app in APPS
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts and "templates" not in path.parts
    )


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(absolute module imported, inside a function?) for each import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    module = ".".join([*base, child.module] if child.module else base)
                else:
                    module = child.module or ""
                found.append((module, in_function))
                # "from orders import services" imports orders.services
                found.extend((f"{module}.{alias.name}", in_function) for alias in child.names)
            visit(child, nested)

    visit(tree, False)
    return found


def _app(module: str) -> str:
    return module.split(".")[0]


def _where(path: Path) -> str:
    return str(path.relative_to(ROOT))


MODULES = _modules()


def test_the_rules_see_the_code():
    names = {_where(path) for path in MODULES}
    assert "orders/services/execution_reports.py" in names
    assert "compliance/services.py" in names
    assert len(names) > 50


@pytest.mark.parametrize("path", MODULES, ids=_where)
def test_no_function_level_import_of_another_app(path):
    own = path.relative_to(ROOT).parts[0]
    hidden = sorted({module for module, in_function in _imports(path) if in_function and _app(module) in APPS} - {""})
    hidden = [module for module in hidden if _app(module) != own]
    assert hidden == [], f"{_where(path)} imports {hidden} inside a function"


@pytest.mark.parametrize("path", [p for p in MODULES if p.relative_to(ROOT).parts[0] == "compliance"], ids=_where)
def test_compliance_never_imports_routing_nor_order_services_outside_its_interfaces(path):
    imported = {module for module, _ in _imports(path)}
    assert not {m for m in imported if _app(m) == "routing"}, f"{_where(path)} imports routing"
    interface = path.relative_to(ROOT).parts[1] in ("api", "admin", "admin.py", "management")
    if not interface:
        calls = {m for m in imported if m == "orders.services" or m.startswith("orders.services.")}
        assert not calls, f"{_where(path)} calls {sorted(calls)}"


@pytest.mark.parametrize("path", [p for p in MODULES if p.relative_to(ROOT).parts[0] == "routing"], ids=_where)
def test_routing_reaches_orders_only_by_task_name(path):
    imported = {module for module, _ in _imports(path)}
    assert not {m for m in imported if _app(m) in ("orders", "compliance")}, f"{_where(path)} imports orders"


@pytest.mark.parametrize("path", [p for p in MODULES if p.relative_to(ROOT).parts[0] == "audit"], ids=_where)
def test_audit_imports_no_domain_app(path):
    imported = {module for module, _ in _imports(path)}
    assert not {m for m in imported if _app(m) in DOMAIN_APPS}, f"{_where(path)} imports a domain app"


@pytest.mark.parametrize(
    "name",
    [
        "errors.py",
        "commands.py",
        "roles.py",
        "celery.py",
        "db.py",
        "health.py",
        "hardening.py",
        "parsers.py",
        "lockout.py",
    ],
)
def test_site_library_modules_import_no_app(name):
    imported = {module for module, _ in _imports(ROOT / "oms_site" / name)}
    assert not {m for m in imported if _app(m) in APPS and _app(m) != "oms_site"}, f"oms_site/{name} imports an app"


@pytest.mark.parametrize("path", [p for p in MODULES if p.name != "simulator.py"], ids=_where)
def test_no_module_over_700_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{_where(path)} has {lines} lines: split it by use case"
