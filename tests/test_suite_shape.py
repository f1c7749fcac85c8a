"""The suite's own shape: a test module imports helpers (tests/helpers.py, tests/samples.py)
and gets fixtures from conftest by name, never by importing another test module or conftest,
so that moving or deleting one test module breaks no other."""

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def imported_modules(source: str) -> set[str]:
    """Every module a source imports, at any depth; `from tests import x` names `tests.x`."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.add(base)
            if node.module in (None, "tests"):  # a package: its names may be modules
                found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def is_test_module(name: str) -> bool:
    return any(part == "conftest" or part.startswith("test_") for part in name.split("."))


@pytest.mark.parametrize("source, wrong", [
    ("from tests.test_cli import cli", True),
    ("import tests.conftest", True),
    ("from tests import conftest", True),
    ("from . import test_routing", True),
    ("from .conftest import ROOT", True),
    ("def f():\n    from tests.test_users import me", True),
    ("from tests.helpers import submit", False),
    ("from tests import helpers, samples", False),
    ("from leads.pipeline import states", False),
])
def test_the_check_tells_a_test_module_import(source, wrong):
    assert any(map(is_test_module, imported_modules(source))) is wrong


def test_no_test_module_imports_another_test_module_or_conftest():
    modules = sorted(TESTS.glob("test_*.py"))
    assert Path(__file__).resolve() in modules
    wrong = {path.name: sorted(filter(is_test_module, imported_modules(path.read_text())))
             for path in modules}
    assert {name: found for name, found in wrong.items() if found} == {}
