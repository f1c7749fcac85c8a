"""Arrows run one way: the web (leads/web, each domain's api) and the tasks call operations,
which use models; nothing under leads/ reaches for the workers, and the domain's operations,
models and rules import neither Flask nor Celery (CONTRACT-independent, issue 11)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("flask", "celery", "webargs", "flask_smorest", "flask_limiter", "flask_cors",
              "flask_wtf", "flask_babel", "wtforms", "werkzeug")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every module the file imports, at the top or inside a function."""
    names, package = set(), module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def kind(module: str) -> str:
    parts = module.split(".")
    if parts[:2] == ["leads", "web"] or "api" in parts or parts[-1] == "cli":
        return "web"
    if parts[-1] == "tasks":
        return "tasks"
    if parts[-1].endswith("schemas"):
        return "schemas"
    return "domain"


def within(name: str, roots) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def wrong_way(module: str, names: set[str]) -> list[str]:
    own_kind = kind(module)
    problems = [name for name in names if within(name, ["workers"])]
    leads_names = [name for name in names if within(name, ["leads"])]
    if own_kind in ("domain", "schemas"):
        problems += [name for name in leads_names if kind(name) in ("web", "tasks")]
    if own_kind == "tasks":
        problems += [name for name in leads_names if kind(name) == "web"]
    if own_kind == "domain":
        problems += [name for name in names if within(name, FRAMEWORKS)]
    if own_kind == "schemas":
        # Marshmallow schemas may use flask-smorest's field for uploads, nothing of Flask.
        problems += [name for name in names if within(name, FRAMEWORKS)
                     and not within(name, ["flask_smorest.fields"])]
    return sorted(set(problems))


MODULES = sorted((ROOT / "leads").rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_run_one_way(path):
    assert wrong_way(module_name(path), imported(path)) == []


@pytest.mark.parametrize(("module", "names"), [
    ("leads.routing.operations", {"flask"}),
    ("leads.pipeline.workflow", {"leads.web.guards", "leads.web.guards.current_staff"}),
    ("leads.messaging.outbox", {"workers.settings"}),
    ("leads.pipeline.models", {"leads.routing.tasks"}),
    ("leads.intake.schemas", {"flask.g"}),
    ("leads.privacy.tasks", {"leads.privacy.api"}),
])
def test_a_wrong_way_import_is_found(module, names):
    assert wrong_way(module, names) != []


def test_the_rule_reads_the_imports_it_judges():
    found = imported(ROOT / "leads" / "web" / "app.py")
    assert "flask.Flask" in found and "leads.web.guards.register_guards" in found
    assert kind("leads.pipeline.api.leads") == "web" and kind("leads.pipeline.states") == "domain"
