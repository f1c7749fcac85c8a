"""Mutation testing for the pipeline's transition tables, which mutmut does not mutate (they
are data). Each run removes one allowed pair or adds one that is not allowed, runs the table
tests in this process, and counts the mutant killed when they fail.

    python scripts/mutate_tables.py [pytest args selecting the tests, default the states tests]
"""

import contextlib
import io
import sys

import pytest

from leads.pipeline import states as pipeline

TABLES = {"lead": pipeline.LEAD_TRANSITIONS, "referral": pipeline.REFERRAL_TRANSITIONS}
DEFAULT_TESTS = ["tests/test_pipeline.py", "-k", "not stored_lead"]


def mutants(table: dict):
    """(description, source, new targets) for every one-pair removal and addition."""
    statuses = list(table)
    for source in statuses:
        for target in statuses:
            targets = table[source]
            if target in targets:
                yield f"remove {source}->{target}", source, targets - {target}
            else:
                yield f"add {source}->{target}", source, targets | {target}


def tests_fail(args: list[str]) -> bool:
    with contextlib.redirect_stdout(io.StringIO()):
        code = pytest.main([*args, "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"])
    return code != pytest.ExitCode.OK


def main() -> int:
    args = sys.argv[1:] or DEFAULT_TESTS
    if tests_fail(args):
        print("the table tests fail without any mutation; fix them first")
        return 2
    survived, total = [], 0
    for name, table in TABLES.items():
        for description, source, targets in list(mutants(table)):
            original = table[source]
            table[source] = frozenset(targets)
            try:
                total += 1
                if not tests_fail(args):
                    survived.append(f"{name}: {description}")
            finally:
                table[source] = original
    killed = total - len(survived)
    print(f"tables: {killed}/{total} mutants killed ({killed / total:.1%})")
    for line in survived:
        print(f"  survived: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
