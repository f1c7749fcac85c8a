"""Statuses are spelled in one module (leads/pipeline/states.py); everywhere else names its
members, so that a renamed or added status cannot be missed in one corner."""

import ast
from pathlib import Path

import pytest

from leads.pipeline.states import (
    DeliveryStatus,
    EventKind,
    LeadStatus,
    MessageStatus,
    Priority,
    ReferralStatus,
    TaskStatus,
)

ROOT = Path(__file__).resolve().parent.parent
# RequestStatus is left out: its `active` names a field in many a schema and query.
SPELLED = {member.value for enum in (LeadStatus, ReferralStatus, MessageStatus, Priority, EventKind,
                                     TaskStatus, DeliveryStatus)
           for member in enum}
STATES = ROOT / "leads" / "pipeline" / "states.py"


def bare_statuses(source: str) -> list[tuple[int, str]]:
    tree = ast.parse(source)
    # A dict key or a subscript names a field of an answer ({"accepted": 3}), not a status.
    fields = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            fields.update(id(key) for key in node.keys if key is not None)
        elif isinstance(node, ast.Subscript):
            fields.add(id(node.slice))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and node.value in SPELLED and id(node) not in fields]


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "leads").rglob("*.py") if p != STATES),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_status_is_spelled_outside_the_states_module(path):
    assert bare_statuses(path.read_text()) == []


def test_a_bare_status_is_found_and_a_field_name_is_not():
    assert bare_statuses('if lead.status == "routed":\n    pass') == [(1, "routed")]
    assert bare_statuses('x = {"accepted": 1}\ny = entry["accepted"]') == []
