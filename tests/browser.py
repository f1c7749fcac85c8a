"""Browser helpers for the page tests: Debian's Chromium driven by Playwright, axe-core's
checks and screenshots. The fixtures (`browser`, `page`, `live_server`) are in conftest.py.

No browser means the tests fail, loudly: `make test` installs `chromium` when missing."""

import os
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe

ROOT = Path(__file__).resolve().parent.parent
# Debian's build, launched by path: Playwright's own downloaded browsers are not used.
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "docs" / "screenshots"
# axe-core's impacts that fail a page (CONTRACT §9); minor and moderate ones are reported
# by axe but tolerated.
FAILING_IMPACTS = {"serious", "critical"}
_axe = Axe()


def launch_chromium(playwright):
    """Chromium at `CHROMIUM`, or an error saying how to get it (never a skip)."""
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"no browser at {CHROMIUM}: `make browser` (apt-get install "
                           "chromium) installs it, or set CHROMIUM to another Chromium")
    # The sandbox needs user namespaces, which containers (and root) often lack.
    return playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])


def serious_violations(page) -> list[dict]:
    """axe-core's violations of impact serious or critical on the page as it is now."""
    results = _axe.run(page)
    return [violation for violation in results.response["violations"]
            if violation["impact"] in FAILING_IMPACTS]


def assert_accessible(page) -> None:
    """Fail, naming each rule and the elements breaking it, when axe-core finds a violation
    of impact serious or critical."""
    violations = serious_violations(page)
    report = "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']}\n"
        + "\n".join(f"    {node['target']}: {node.get('failureSummary', '')}"
                    for node in v["nodes"])
        for v in violations)
    assert not violations, f"axe-core found on {page.url}:\n{report}"


def screenshot(page, name: str) -> Path:
    """A full-page screenshot at docs/screenshots/<name>.png (shown in the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
