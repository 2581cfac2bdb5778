"""Every test that drives Chromium carries the `browser` marker (on itself or its module), so the README's fast
command `-m "not slow and not mirror and not browser"` runs none of them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
DRIVES_CHROMIUM = re.compile(r"chromium|webdriver|chrome", re.IGNORECASE)


def _marks(decorators: list[ast.expr]) -> set[str]:
    """Names N of `pytest.mark.N` in decorators or a `pytestmark = ...` value."""
    found = set()
    for node in decorators:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Attribute) and sub.value.attr == "mark":
                found.add(sub.attr)
    return found


def chromium_tests_without_marker(source: str) -> list[str]:
    """Test functions whose body or fixtures (a `driver` argument) use Chromium but that carry no browser mark."""
    tree = ast.parse(source)
    module_marks = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets):
            module_marks |= _marks([node.value])
    missing = []
    for node in tree.body:
        if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
            continue
        uses = "driver" in {a.arg for a in node.args.args} or DRIVES_CHROMIUM.search(ast.get_source_segment(source, node))
        if uses and "browser" not in module_marks | _marks(node.decorator_list):
            missing.append(node.name)
    return missing


def test_the_check_sees_an_unmarked_chromium_test():
    source = "import pytest\n\n@pytest.mark.slow\ndef test_a(tmp_path):\n    shutil.which('chromium')\n\n" \
             "def test_b(driver):\n    pass\n\n@pytest.mark.browser\ndef test_c(driver):\n    pass\n"  # fmt: skip
    assert chromium_tests_without_marker(source) == ["test_a", "test_b"]
    assert chromium_tests_without_marker("import pytest\npytestmark = [pytest.mark.browser]\n" + source) == []


def test_every_chromium_test_is_marked_browser():
    missing = {p.name: m for p in sorted(TESTS.glob("test_*.py")) if p != Path(__file__)
               if (m := chromium_tests_without_marker(p.read_text()))}  # fmt: skip
    assert not missing, f"tests that drive Chromium without @pytest.mark.browser: {missing}"
